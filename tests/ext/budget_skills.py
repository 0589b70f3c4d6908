"""Skills that spend (``ctx.spend``), served by the agent ``budgeters``, for the
budget tests; ``budget_parents`` calls them from other workers."""

from __future__ import annotations

import asyncio
from typing import Any

from worker import BudgetExceeded, RunContext, skill


@skill("spender", queue="budget")
async def spender(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Spends ``each`` ``times`` times; reports what was left after each."""
    left = []
    for _ in range(int(args.get("times", 10))):
        left.append(await ctx.spend(float(args["each"]), str(args.get("unit", "usd"))))
        await asyncio.sleep(float(args.get("pause", 0)))
    return {"left": left}


@skill("greedy", queue="budget")
async def greedy(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    """Tries to spend ``amount`` at once, after a pause so siblings overlap."""
    await asyncio.sleep(float(args.get("pause", 0.2)))
    try:
        await ctx.spend(float(args["amount"]))
    except BudgetExceeded:
        return "refused"
    return "spent"


@skill("capped", queue="budget", budget={"usd": 0.25})
async def capped(ctx: RunContext[Any], args: dict[str, Any]) -> int:
    """Spends 0.1 until its skill's own budget stops it; how many went through."""
    done = 0
    while True:
        try:
            await ctx.spend(0.1)
        except BudgetExceeded:
            return done
        done += 1


@skill("asks_for_more", queue="budget", budget={"usd": 0.3}, on_budget="ask")
async def asks_for_more(ctx: RunContext[Any], args: dict[str, Any]) -> float:
    """Spends 0.1 five times; past 0.3 its owner is asked to raise the budget."""
    for n in range(5):
        await ctx.step(f"spend-{n}", ctx.spend, 0.1)
    return 0.5
