"""A skill that says who called it: how the HTTP server's identity reaches a job."""

from __future__ import annotations

from typing import Any

from worker import RunContext, ScopedAuth, skill


@skill("whoami", auth=ScopedAuth, queue="http", description="The caller's identity.")
async def whoami(ctx: RunContext[ScopedAuth], args: dict[str, Any]) -> dict[str, Any]:
    return {"subject": ctx.auth.subject, "scopes": ctx.auth.scopes}
