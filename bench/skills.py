"""Skills used by the benchmark suite (SKILLQ_SKILLS=bench.skills)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from worker import AgentEvent, CancelledByCaller, RunContext, skill


@skill("bench.noop", description="Does nothing: the runtime's own cost.")
async def noop(ctx: RunContext[Any], args: Any) -> None:
    return None


class RateArgs(BaseModel):
    count: int = 1000
    interval: float = 0.001


@skill("bench.paced", args=RateArgs, description="Emits events at a steady rate.")
async def paced(ctx: RunContext[Any], args: RateArgs) -> int:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(args.count):
        await ctx.emit_event(AgentEvent(kind="tick", payload={"i": index}))
        delay = start + (index + 1) * args.interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return args.count


class FloodArgs(BaseModel):
    count: int = 100_000


@skill("bench.flood", args=FloodArgs, description="Emits text deltas as fast as it can.")
async def flood(ctx: RunContext[Any], args: FloodArgs) -> float:
    started = time.time()
    for _ in range(args.count):
        await ctx.emit_text_delta("x")
    return started


@skill("bench.cancel_probe", description="Checks for cancellation every millisecond.")
async def cancel_probe(ctx: RunContext[Any], args: Any) -> None:
    try:
        while True:
            await ctx.check_cancelled()
            await asyncio.sleep(0.001)
    except CancelledByCaller:
        await ctx.emit_event(AgentEvent(kind="noticed", payload={"at": time.time()}))
        raise


class SoakArgs(BaseModel):
    millis: int = 50


@skill("bench.soak", args=SoakArgs, description="A small job for the soak test.")
async def soak(ctx: RunContext[Any], args: SoakArgs) -> int:
    await ctx.emit_progress("started")
    ref = await ctx.write_artifact("out.txt", ctx.task_id.encode(), "text/plain")
    await ctx.emit_artifact(ref)
    for _ in range(max(1, args.millis // 10)):
        await ctx.check_cancelled()
        await asyncio.sleep(0.01)
    await ctx.emit_progress("done")
    return args.millis


class AbortArgs(BaseModel):
    how: str = "system_exit"


@skill("bench.abort", args=AbortArgs, description="Raises what would stop a worker (soak test).")
async def abort(ctx: RunContext[Any], args: AbortArgs) -> None:
    await ctx.emit_progress("about to abort")
    if args.how == "system_exit":
        raise SystemExit(1)
    if args.how == "keyboard_interrupt":
        raise KeyboardInterrupt
    raise asyncio.CancelledError  # no cancel of this job asked for it


class WaitArgs(BaseModel):
    seconds: float = 2.0
    deltas: int = 0


@skill("bench.wait", args=WaitArgs, description="Waits as a model call would, streaming deltas.")
async def wait(ctx: RunContext[Any], args: WaitArgs) -> None:
    if not args.deltas:
        await asyncio.sleep(args.seconds)
        return
    for index in range(args.deltas):
        await asyncio.sleep(args.seconds / args.deltas)
        await ctx.emit_text_delta(f"token {index} ")
