"""Skills with durable steps (``ctx.step``). Each step appends its name to the
file ``counter`` names, so a test counts how often each really ran."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill


def count(counter: str, name: str) -> str:
    with Path(counter).open("a") as handle:
        handle.write(name + "\n")
    return name


class Retryable(RuntimeError):
    """Raised once by ``steps_then_retry`` to force a second attempt."""


@skill("three_steps", queue="steps")
async def three_steps(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    counter, gate = str(args["counter"]), Path(str(args["gate"]))
    first = await ctx.step("one", count, counter, "one")  # a sync function
    second = await ctx.step("two", asyncio.to_thread, count, counter, "two")
    await ctx.emit_progress(f"pid {os.getpid()}")

    async def wait_then_count() -> list[Any]:
        while not gate.exists():
            await ctx.check_cancelled()
            await asyncio.sleep(0.05)
        return [count(counter, "three"), 3]

    third = await ctx.step("three", wait_then_count)
    return {"steps": [first, second, third]}


@skill("steps_then_retry", queue="steps", retries=2, retry_on=(Retryable,), backoff=0.2)
async def steps_then_retry(ctx: RunContext[Any], args: dict[str, Any]) -> int:
    counter = str(args["counter"])
    await ctx.step("paid", count, counter, "paid")
    if Path(counter).read_text().count("attempt") == 0:
        count(counter, "attempt")
        raise Retryable("the first attempt fails after its step")
    return len(Path(counter).read_text().splitlines())


@skill("leaky_step", queue="steps", secrets=["OPENAI_KEY"])
async def leaky_step(ctx: RunContext[Any], args: dict[str, Any]) -> str:
    return str(await ctx.step("leak", lambda: ctx.secret("OPENAI_KEY")))


@skill("same_step_twice", queue="steps")
async def same_step_twice(ctx: RunContext[Any], args: dict[str, Any]) -> int:
    await ctx.step("twice", lambda: 1)
    return int(await ctx.step("twice", lambda: 2))


@skill("napper", queue="steps")
async def napper(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    counter = str(args["counter"])
    await ctx.step("before", count, counter, "before")
    count(counter, "outside")  # not in a step: runs again after the sleep
    await ctx.sleep(float(args.get("seconds", 4)))
    await ctx.step("after", count, counter, "after")
    return {"woke": True}


class Approval(BaseModel):
    approve: bool
    note: str = ""


@skill("approver", queue="steps-ask")
async def approver(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    counter = str(args["counter"])
    await ctx.step("prepare", count, counter, "prepare")
    timeout = None if args.get("timeout") is None else float(args["timeout"])
    answer = await ctx.ask(f"refund {args['amount']}?", schema=Approval, timeout=timeout)
    return {"approved": answer.approve, "note": answer.note}


@skill("asks_twice", queue="steps-ask")
async def asks_twice(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Two questions in one handler: the second is asked on the run the first's
    answer resumes."""
    first = await ctx.ask("first?", schema=Approval)
    second = await ctx.ask("second?", schema=Approval)
    return {"first": first.approve, "second": second.approve}


@skill("asks_through_a_child", queue="steps-ask")
async def asks_through_a_child(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, Any]:
    """Calls ``approver``, which runs inline in this process and asks there."""
    result = await ctx.call(str(args["agent"]), "approver", args=args["child"], timeout=60)
    return {"ok": result.ok, "output": result.output, "error": result.error}
