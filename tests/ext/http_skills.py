"""A skill that says who called it: how the HTTP server's identity reaches a job."""

from __future__ import annotations

import logging
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


HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@skill("hostile", queue="http", description="Writes markup wherever a job can write.")
async def hostile(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, str]:
    await ctx.emit_progress(HOSTILE)
    await ctx.emit_text_delta(HOSTILE)
    logging.getLogger("hostile").warning("logged %s", HOSTILE)
    await ctx.write_artifact("page.html", HOSTILE.encode(), "text/html")
    await ctx.write_artifact(
        "notes.json", ('{"x": "' + HOSTILE.replace('"', "'") + '"}').encode(), "application/json"
    )
    await ctx.write_artifact("<b>odd</b>.txt", HOSTILE.encode(), "text/plain")
    raise ValueError(HOSTILE)
