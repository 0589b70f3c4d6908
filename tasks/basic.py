"""Small skills that show each part of the RunContext, used by the demo and tests."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from worker import RunContext, skill


class EchoArgs(BaseModel):
    message: str = "hello"


@skill("echo", args=EchoArgs, description="Return the message it was given.", tags=["demo"])
async def echo(ctx: RunContext[Any], args: EchoArgs) -> dict[str, str]:
    return {"message": args.message}


class StoryArgs(BaseModel):
    topic: str = "a queue that never lost a job"
    words: int = Field(default=24, ge=1, le=10_000)
    delay: float = Field(default=0.05, ge=0, le=5)


class StoryOut(BaseModel):
    text: str
    words: int


@skill(
    "story",
    args=StoryArgs,
    result=StoryOut,
    description="Stream a short text word by word with progress updates.",
    tags=["demo", "streaming"],
)
async def stream_story(ctx: RunContext[Any], args: StoryArgs) -> StoryOut:
    vocabulary = f"once upon a time there was {args.topic} and it worked".split()
    words: list[str] = []
    for index in range(args.words):
        await ctx.check_cancelled()
        word = vocabulary[index % len(vocabulary)]
        words.append(word)
        await ctx.emit_text_delta(word + " ")
        if (index + 1) % 8 == 0 or index + 1 == args.words:
            await ctx.emit_progress(f"{index + 1}/{args.words} words")
        if args.delay:
            await asyncio.sleep(args.delay)
    return StoryOut(text=" ".join(words), words=len(words))


class ReportArgs(BaseModel):
    title: str = "report"
    lines: list[str] = Field(default_factory=lambda: ["skillq wrote this artifact."])


@skill(
    "report",
    args=ReportArgs,
    description="Write a Markdown artifact and announce it.",
    tags=["demo", "artifacts"],
)
async def write_report(ctx: RunContext[Any], args: ReportArgs) -> dict[str, Any]:
    body = "\n".join([f"# {args.title}", "", *args.lines, ""]).encode()
    ref = await ctx.write_artifact("report.md", body, "text/markdown")
    await ctx.emit_artifact(ref)
    return {"artifact": ref.uri, "size_bytes": ref.size_bytes}


class SleepyArgs(BaseModel):
    seconds: float = Field(default=30.0, ge=0, le=86_400)
    tick: float = Field(default=0.01, gt=0, le=60)


@skill(
    "sleepy",
    args=SleepyArgs,
    description="Run for a while, checking for cancellation on every tick.",
    tags=["demo", "cancellation"],
)
async def sleepy(ctx: RunContext[Any], args: SleepyArgs) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_report = 0.0
    while (elapsed := loop.time() - started) < args.seconds:
        await ctx.check_cancelled()
        if elapsed >= next_report:
            await ctx.emit_progress(f"{elapsed:.1f}s of {args.seconds:g}s")
            next_report += 1.0
        await asyncio.sleep(args.tick)
    return {"slept": round(loop.time() - started, 3)}
