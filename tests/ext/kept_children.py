"""The children ``kept_call_skills`` calls, served by other workers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from worker import RunContext, skill


def _count(counter: str, name: str) -> int:
    with Path(counter).open("a") as handle:
        handle.write(name + "\n")
    return Path(counter).read_text().splitlines().count(name)


@skill("quick_child", queue="kept-child")
async def quick_child(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    """Fails its first run when ``fail_first`` is set, else answers at once."""
    runs = _count(str(args["counter"]), "quick")
    if args.get("fail_first") and runs == 1:
        raise RuntimeError("the first quick child fails")
    return f"quick {runs}"


@skill("gated_child", queue="kept-child")
async def gated_child(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    """Runs until the file ``gate`` names exists."""
    _count(str(args["counter"]), "gated")
    while not Path(str(args["gate"])).exists():
        await ctx.check_cancelled()
        await asyncio.sleep(0.05)
    return "gated"
