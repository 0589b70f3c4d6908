"""Skills that fail on purpose, to test retries. Each attempt appends a line
(its start time) to the file named by ``marker``, so a test can count the
attempts and measure the gaps between them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill

QUEUE = "retry"


class Flaky(BaseModel):
    marker: str
    fail_times: int = 2


class Flakiness(RuntimeError):
    """The failure the flaky skills retry on."""


def attempt(marker: str) -> int:
    path = Path(marker)
    with path.open("a") as handle:
        handle.write(f"{time.time()!r}\n")
    return len(path.read_text().splitlines())


@skill(
    "flaky", args=Flaky, queue=QUEUE, retries=3, retry_on=(Flakiness,), backoff=0.5, jitter=False
)
async def flaky(ctx: RunContext[Any], args: Flaky) -> int:
    number = attempt(args.marker)
    if number <= args.fail_times:
        raise Flakiness(f"attempt {number} failed on purpose")
    return number


@skill("hopeless", args=Flaky, queue=QUEUE, retries=3, backoff=0.2, jitter=False)
async def hopeless(ctx: RunContext[Any], args: Flaky) -> int:
    raise Flakiness(f"attempt {attempt(args.marker)} failed, as they all do")


@skill("patient", args=Flaky, queue=QUEUE, retries=3, backoff=3.0, jitter=False)
async def patient(ctx: RunContext[Any], args: Flaky) -> int:
    raise Flakiness(f"attempt {attempt(args.marker)} failed; the next one waits 3 s")


@skill("slow_flaky", args=Flaky, queue=QUEUE, retries=2, backoff=3.0, jitter=False)
async def slow_flaky(ctx: RunContext[Any], args: Flaky) -> int:
    number = attempt(args.marker)
    if number <= args.fail_times:
        raise Flakiness(f"attempt {number} failed; the next one waits 3 s")
    return number


@skill("picky", args=Flaky, queue=QUEUE, retries=3, retry_on=(ValueError,), backoff=0.2)
async def picky(ctx: RunContext[Any], args: Flaky) -> int:
    raise KeyError(f"attempt {attempt(args.marker)}: not a ValueError, so never retried")


@skill("calls_flaky", args=Flaky, queue=QUEUE)
async def calls_flaky(ctx: RunContext[Any], args: Flaky) -> dict[str, Any]:
    """Calls ``flaky``, which this worker serves, so the child runs (and retries) inline."""
    result = await ctx.call("skillq", "flaky", args=args.model_dump(), timeout=60)
    return {"ok": result.ok, "output": result.output, "child": result.task_id}
