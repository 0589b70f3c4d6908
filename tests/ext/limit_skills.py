"""Skills for priorities and limits. ``hold`` keeps a worker busy until the
test creates its gate file; the limited skills record nothing themselves: the
tests read start and finish times from the job records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill


class Gate(BaseModel):
    gate: str


class Work(BaseModel):
    seconds: float = 0.0
    gate: str | None = None


async def until(gate: str | None) -> None:
    """Block (politely) until the test opens the gate."""
    while gate is not None and not Path(gate).exists():
        await asyncio.sleep(0.02)  # polls a file the test creates


@skill("hold", args=Gate, queue="prio", description="Waits until its gate file exists.")
async def hold(ctx: RunContext[Any], args: Gate) -> float:
    await until(args.gate)
    return time.time()


@skill("note", queue="prio", description="Returns when it ran.")
async def note(ctx: RunContext[Any], args: dict[str, Any]) -> float:
    return time.time()


@skill("capped", args=Work, queue="limits", concurrency=2, description="Two at a time, anywhere.")
async def capped(ctx: RunContext[Any], args: Work) -> float:
    await until(args.gate)
    await asyncio.sleep(args.seconds)  # simulated work
    return time.time()


@skill(
    "per_customer",
    args=Work,
    queue="limits",
    key_concurrency=1,
    description="One at a time per concurrency key.",
)
async def per_customer(ctx: RunContext[Any], args: Work) -> float:
    await until(args.gate)
    await asyncio.sleep(args.seconds)  # simulated work
    return time.time()


@skill("metered", queue="limits", rate_limit="20/s", description="At most 20 starts a second.")
async def metered(ctx: RunContext[Any], args: dict[str, Any]) -> float:
    return time.time()


class Fan(BaseModel):
    children: int = 4
    seconds: float = 0.3


@skill("fan_out", args=Fan, queue="limits", description="Calls capped children, inline.")
async def fan_out(ctx: RunContext[Any], args: Fan) -> list[str]:
    """``capped`` is served here too, so each call runs inline on this loop and
    waits there for a slot."""
    calls = [
        ctx.call("skillq", "capped", args={"seconds": args.seconds}, timeout=60)
        for _ in range(args.children)
    ]
    results = await asyncio.gather(*calls)
    assert all(result.ok for result in results), [result.error for result in results]
    return [str(result.task_id) for result in results]
