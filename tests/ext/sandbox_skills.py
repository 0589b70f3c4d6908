"""A skill that runs code in ``ctx.sandbox``; written against the seed's
``RunContext`` only, so it runs on ``LocalRunContext`` and on a worker."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill


class Code(BaseModel):
    code: str
    language: str = "python"
    timeout: float | None = None
    files: dict[str, str] = {}


@skill("sandbox_run", queue="sandbox", args=Code)
async def sandbox_run(ctx: RunContext[Any], args: Code) -> dict[str, Any]:
    result = await ctx.sandbox.run(
        args.code,
        language=args.language,
        timeout=args.timeout,
        files={name: text.encode() for name, text in args.files.items()} or None,
    )
    return {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "timed_out": result.timed_out,
        "truncated": result.truncated,
        "duration": result.duration,
    }
