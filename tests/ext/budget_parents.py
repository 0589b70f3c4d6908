"""Callers whose children (``budget_skills``) run on other workers: a call tree
shares its root's budget."""

from __future__ import annotations

import asyncio
from typing import Any

from worker import RunContext, skill


@skill("fan_out", queue="budget-parent")
async def fan_out(ctx: RunContext[Any], args: dict[str, Any]) -> list[Any]:
    """Three children at once, each trying to spend ``amount``."""
    calls = [
        ctx.call("budgeters", "greedy", args={"amount": args["amount"]}, timeout=120)
        for _ in range(3)
    ]
    return [result.output if result.ok else result.error for result in await asyncio.gather(*calls)]


@skill("shares", queue="budget-parent")
async def shares(ctx: RunContext[Any], args: dict[str, Any]) -> Any:
    """One child given a share of 0.2; it spends 0.1 until stopped."""
    result = await ctx.call(
        "budgeters", "spender", args={"each": 0.1, "times": 5}, budget={"usd": 0.2}, timeout=120
    )
    return {"ok": result.ok, "error": result.error, "child": result.task_id}
