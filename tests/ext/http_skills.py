"""A skill that says who called it: how the HTTP server's identity reaches a job."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from worker import RunContext, ScopedAuth, skill


@skill("whoami", auth=ScopedAuth, queue="http", description="The caller's identity.")
async def whoami(ctx: RunContext[ScopedAuth], args: dict[str, Any]) -> dict[str, Any]:
    return {"subject": ctx.auth.subject, "scopes": ctx.auth.scopes}


class Go(BaseModel):
    go: bool


@skill("asks_to_go", queue="http", description="Asks whether to go on.")
async def asks_to_go(ctx: RunContext[Any], args: dict[str, Any]) -> bool:
    answer = await ctx.ask("go on?", schema=Go, timeout=600)
    return bool(answer.go)
