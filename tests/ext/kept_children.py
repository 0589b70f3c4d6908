"""The children ``kept_call_skills`` calls, served by other workers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from worker import RunContext, skill
from worker.embedded import wait_for


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
    """Runs until the file ``gate`` names exists (at most 120 s)."""
    _count(str(args["counter"]), "gated")
    gate = Path(str(args["gate"]))
    await asyncio.to_thread(wait_for, gate.exists, 120, "the gate to open")
    return "gated"
