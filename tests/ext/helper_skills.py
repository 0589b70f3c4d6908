"""Skills of another agent (``helper``), on its own queue and workers: a call
to them from the ``planner`` agent is queued, not run inline."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill


class Square(BaseModel):
    n: int


@skill(
    "remote_square",
    args=Square,
    queue="helper",
    tags=["math", "remote"],
    description="n squared, on the helper agent.",
)
async def remote_square(ctx: RunContext[Any], args: Square) -> int:
    await ctx.emit_progress(f"squaring {args.n}")
    await ctx.write_artifact("square.txt", str(args.n * args.n).encode(), "text/plain")
    return args.n * args.n


class Nap(BaseModel):
    seconds: float


@skill("remote_napper", args=Nap, queue="helper", description="Sleeps, checking for cancels.")
async def remote_napper(ctx: RunContext[Any], args: Nap) -> str:
    loop = asyncio.get_running_loop()
    until = loop.time() + args.seconds
    while loop.time() < until:
        await ctx.check_cancelled()
        await asyncio.sleep(0.05)
    return "rested"
