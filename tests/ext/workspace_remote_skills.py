"""A workspace skill served by another agent, so calls to it are queued jobs
(the grant travels in the message, signed with the call)."""

from __future__ import annotations

from typing import Any

from worker import RunContext, skill


@skill("ws_remote_reader", queue="workspace-remote", workspace_access=True)
async def ws_remote_reader(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    ws = ctx.workspace
    denied = ""
    try:
        await ws.read("out/result.txt")
    except PermissionError as exc:
        denied = str(exc)
    return {"read": (await ws.read("in/data.txt")).decode(), "read_outside": denied}
