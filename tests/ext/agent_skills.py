"""Skills that find and call other skills, written against the seed's
``RunContext`` only: the same source runs on ``LocalRunContext`` and on a
worker. The suite copies this file outside the repository."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from worker import RunContext, ScopedAuth, skill

QUEUE = "agents"


class Square(BaseModel):
    n: int


@skill(
    "square",
    queue=QUEUE,
    args=Square,
    tags=["math"],
    description="n squared, also as an artifact.",
)
async def square(ctx: RunContext[Any], args: Square) -> int:
    await ctx.write_artifact("square.txt", str(args.n * args.n).encode(), "text/plain")
    return args.n * args.n


class Delegate(BaseModel):
    tag: str | None = None
    skill: str | None = None
    call: str = "square"
    args: dict[str, Any] = {}
    timeout: float | None = None


@skill(
    "delegate",
    queue=QUEUE,
    args=Delegate,
    tags=["planning"],
    description="Finds a peer and calls it.",
)
async def delegate(ctx: RunContext[Any], args: Delegate) -> dict[str, Any]:
    found = await ctx.discover.find(tag=args.tag, skill=args.skill)
    if not found:
        return {"agents": [], "call": None}
    peer = found[0]
    result = await ctx.call(peer.url, args.call, args=args.args, timeout=args.timeout)
    return {"agents": [agent.name for agent in found], "call": result.model_dump(mode="json")}


class Chain(BaseModel):
    steps: list[str]


@skill(
    "chain",
    queue=QUEUE,
    args=Chain,
    description="Calls the next skill of the chain; the last answers.",
)
async def chain(ctx: RunContext[Any], args: Chain) -> Any:
    if not args.steps:
        return "end"
    head, rest = args.steps[0], args.steps[1:]
    result = await ctx.call("planner", head, args={"steps": rest}, timeout=60)
    if not result.ok:
        raise RuntimeError(f"step {head} failed: {result.error}")
    return [head, result.output]


@skill("chain2", queue=QUEUE, args=Chain, description="The same as chain, under another name.")
async def chain2(ctx: RunContext[Any], args: Chain) -> Any:
    return await chain.handler(ctx, args)


class FanOut(BaseModel):
    count: int = 10


@skill("fan_out", queue=QUEUE, args=FanOut, description="Calls square concurrently.")
async def fan_out(ctx: RunContext[Any], args: FanOut) -> list[int]:
    results = await asyncio.gather(
        *(ctx.call("planner", "square", args={"n": n}, timeout=60) for n in range(args.count))
    )
    return [result.output if result.ok else -1 for result in results]


@skill("cycle", queue=QUEUE, description="Calls itself, forever if nothing stops it.")
async def cycle(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    result = await ctx.call("planner", "cycle", args={}, timeout=60)
    return result.model_dump(mode="json")


class Call(BaseModel):
    target: str = "planner"
    skill: str
    args: dict[str, Any] = {}
    timeout: float | None = None


@skill(
    "call_one",
    queue=QUEUE,
    args=Call,
    auth=ScopedAuth,
    description="Makes one call and returns its result.",
)
async def call_one(ctx: RunContext[Any], args: Call) -> dict[str, Any]:
    result = await ctx.call(args.target, args.skill, args=args.args, timeout=args.timeout)
    return result.model_dump(mode="json")


class Nap(BaseModel):
    seconds: float


@skill("napper", queue=QUEUE, args=Nap, description="Sleeps, checking for cancellation.")
async def napper(ctx: RunContext[Any], args: Nap) -> str:
    loop = asyncio.get_running_loop()
    until = loop.time() + args.seconds
    while loop.time() < until:
        await ctx.check_cancelled()
        await asyncio.sleep(0.05)
    return "rested"


@skill(
    "guarded",
    auth=ScopedAuth,
    scopes=["text:read"],
    description="Needs text:read; returns the scopes it ran with.",
)
async def guarded(ctx: RunContext[Any], args: dict[str, Any]) -> list[str]:
    return sorted(ctx.auth.scopes)
