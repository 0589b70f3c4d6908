"""Skills that use a shared workspace, written against the seed's ``RunContext``
only: the same source runs on ``LocalRunContext`` (with ``LocalWorkspaces``)
and on a worker. The suite copies this file outside the repository."""

from __future__ import annotations

import asyncio
from typing import Any

from worker import AgentEvent, RunContext, skill

QUEUE = "workspace"


async def refused(action: Any) -> str:
    """The message of the PermissionError (or ValueError) an action raises; "" if none."""
    try:
        await action
    except (PermissionError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


@skill("ws_report", queue=QUEUE, workspace_access=True)
async def ws_report(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Read an input, write a report under out/, and try what the grant forbids."""
    ws = ctx.workspace
    text = (await ws.read(args.get("input", "in/data.txt"))).decode()
    await ws.write("out/result.txt", text.upper().encode())
    return {
        "read": text,
        "listing": await ws.list(),
        "write_outside": await refused(ws.write("secrets.txt", b"leak")),
        "escape": await refused(ws.read("../other/in/data.txt")),
        "encoded_escape": await refused(ws.read("%2e%2e/other/in/data.txt")),
        "absolute": await refused(ws.write("/etc/passwd", b"x")),
    }


@skill("ws_delegate", queue=QUEUE, workspace_access=True)
async def ws_delegate(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Hand a callee read access to in/ only, and try to hand out more."""
    ws = ctx.workspace
    wider = await refused(ws.delegate(["write:"]))
    token = await ws.delegate(["read:in/"], ttl=120)
    result = await ctx.call(
        args.get("agent", "keeper"), args.get("skill", "ws_reader"), grant=token, timeout=60
    )
    return {
        "wider": wider,
        "child": result.output,
        "ok": result.ok,
        "error": result.error,
        "task_id": result.task_id,
    }


@skill("ws_reader", queue=QUEUE, workspace_access=True)
async def ws_reader(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Use a delegated grant: what it can and cannot reach."""
    ws = ctx.workspace
    return {
        "listing": await ws.list("in/"),
        "read": (await ws.read("in/data.txt")).decode(),
        "read_outside": await refused(ws.read("out/result.txt")),
        "write": await refused(ws.write("in/new.txt", b"x")),
        "list_outside": await refused(ws.list("out/")),
    }


@skill("ws_plain", queue=QUEUE)
async def ws_plain(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    """A skill that did not declare workspace access."""
    try:
        ctx.workspace  # noqa: B018 - the access itself is what is refused
    except PermissionError as exc:
        return str(exc)
    return "granted"


@skill("ws_poll", queue=QUEUE, workspace_access=True)
async def ws_poll(ctx: RunContext[Any], args: dict[str, Any]) -> int:
    """Read a file over and over (every 50 ms) until the grant stops working."""
    reads = 0
    for _ in range(int(args.get("limit", 600))):
        await ctx.workspace.read("in/data.txt")
        reads += 1
        await ctx.emit_event(AgentEvent(kind="progress", payload={"message": f"read {reads}"}))
        await asyncio.sleep(0.05)
    return reads
