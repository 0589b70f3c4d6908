"""Skills for the Sentinel failover tests: each run is written down, so a test
counts what really ran, and ``chatter`` emits events a follower counts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from worker import AgentEvent, RunContext, skill


@skill("tally", queue="failover")
async def tally(ctx: RunContext[Any], args: dict[str, Any]) -> int:
    """Appends the job's id to the file ``runs`` names; returns ``n``."""
    with Path(str(args["runs"])).open("a") as handle:
        handle.write(f"{ctx.task_id}\n")
    return int(args["n"])


@skill("chatter", queue="failover")
async def chatter(ctx: RunContext[Any], args: dict[str, Any]) -> int:
    """Emits ``count`` events ``interval`` seconds apart."""
    count = int(args["count"])
    for index in range(count):
        await ctx.emit_event(AgentEvent("tick", {"i": index}))
        await asyncio.sleep(float(args["interval"]))
    return count


@skill("calls_tally", queue="failover")
async def calls_tally(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Calls ``tally`` and reports how the call came back."""
    result = await ctx.call("skillq", "tally", args=args, timeout=30)
    return {"ok": result.ok, "error": result.error}


@skill("gate", queue="failover")
async def gate(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    """Runs until the file ``open`` names exists (the test's signal)."""
    while not Path(str(args["open"])).exists():
        await asyncio.sleep(0.05)
    return ctx.task_id


@skill("ask_tally", queue="failover")
async def ask_tally(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    """Asks one question, sleeps if told to, writes its run down; returns the answer."""
    timeout = args.get("timeout")
    answer = await ctx.ask("go on?", timeout=None if timeout is None else float(timeout))
    if args.get("sleep"):
        await ctx.sleep(float(args["sleep"]))
    with Path(str(args["runs"])).open("a") as handle:
        handle.write(f"{ctx.task_id}\n")
    return str(answer)
