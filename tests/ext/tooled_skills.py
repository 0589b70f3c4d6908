"""A skill that needs a sandbox, and the capability factory that attaches a
stand-in one (named by ``SKILLQ_CAPABILITIES=tooled_skills:attach``)."""

from __future__ import annotations

from typing import Any

from worker import RunContext, SandboxResult, Settings, skill


class UpperSandbox:
    """Not isolation: it only shows the factory's client reaching the handler."""

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def run(
        self, code: str, *, language: str = "python", timeout: float | None = None
    ) -> SandboxResult:
        return SandboxResult(exit_code=0, stdout=f"{self.agent}:{code.upper()}")


def attach(settings: Settings) -> dict[str, Any]:
    return {"sandbox": UpperSandbox(settings.agent)}


def broken(settings: Settings) -> dict[str, Any]:
    return {"telepathy": object()}


@skill("sandboxed", queue="tooled", description="Runs code in whatever sandbox is attached.")
async def sandboxed(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    result = await ctx.sandbox.run(str(args.get("code", "")))
    return result.stdout
