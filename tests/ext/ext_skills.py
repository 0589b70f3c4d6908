"""Skills that live outside the skillq package, loaded through SKILLQ_SKILLS.

The test suite copies this file to a directory outside the repository and
puts that directory on the workers' PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from pydantic import BaseModel, Field

from worker import AgentEvent, RunContext, ScopedAuth, skill


class WordArgs(BaseModel):
    text: str
    min_length: int = Field(default=1, ge=1)


class WordOut(BaseModel):
    words: int
    secret_sha256: str


@skill(
    "wordcount",
    args=WordArgs,
    auth=ScopedAuth,
    result=WordOut,
    scopes=["text:read"],
    secrets=["OPENAI_KEY"],
    queue="ext",
    time_limit=60,
    description="Count words, write them as an artifact, prove the secret is readable.",
    tags=["text"],
)
async def wordcount(ctx: RunContext[ScopedAuth], args: WordArgs) -> WordOut:
    words = [w for w in args.text.split() if len(w) >= args.min_length]
    for index, word in enumerate(words, 1):
        await ctx.emit_text_delta(word + " ")
        await ctx.emit_progress(f"{index}/{len(words)}")
    ref = await ctx.write_artifact(
        "counts/words.json", ("\n".join(words)).encode(), "application/json"
    )
    await ctx.emit_artifact(ref)
    key = ctx.secret("OPENAI_KEY")
    return WordOut(words=len(words), secret_sha256=hashlib.sha256(key.encode()).hexdigest())


@skill("undeclared_secret", description="Reads a secret it did not declare.")
async def undeclared_secret(ctx: RunContext[Any], args: Any) -> str:
    return ctx.secret("OPENAI_KEY")


@skill("leaky", secrets=["OPENAI_KEY"], description="Puts its secret in an event and an error.")
async def leaky(ctx: RunContext[Any], args: Any) -> None:
    key = ctx.secret("OPENAI_KEY")
    await ctx.emit_progress(f"using key {key}")
    raise RuntimeError(f"upstream refused key {key}")


@skill("boom", description="Fails with a handler exception.")
async def boom(ctx: RunContext[Any], args: Any) -> None:
    raise ValueError("the handler gave up on purpose")


@skill("bad_event", description="Emits an event that is not JSON.")
async def bad_event(ctx: RunContext[Any], args: Any) -> None:
    await ctx.emit_event(AgentEvent(kind="custom", payload={"when": time}))


@skill("bad_result", description="Returns something that is not JSON.")
async def bad_result(ctx: RunContext[Any], args: Any) -> Any:
    return {"value": object()}


@skill("escape_artifact", description="Tries to write outside its prefix.")
async def escape_artifact(ctx: RunContext[Any], args: Any) -> None:
    await ctx.write_artifact(str(args.get("name", "../x")), b"x", "text/plain")


class NapArgs(BaseModel):
    seconds: float = 30.0


@skill("stubborn", args=NapArgs, description="Never checks for cancellation.")
async def stubborn(ctx: RunContext[Any], args: NapArgs) -> str:
    await asyncio.sleep(args.seconds)
    return "finished"


@skill("limited", args=NapArgs, time_limit=0.5, description="Exceeds its time limit.")
async def limited(ctx: RunContext[Any], args: NapArgs) -> str:
    await asyncio.sleep(args.seconds)
    return "finished"


@skill("blocker", args=NapArgs, description="Blocks its event loop (a badly written handler).")
async def blocker(ctx: RunContext[Any], args: NapArgs) -> str:
    time.sleep(args.seconds)
    return "finished"


@skill("big_event", description="Emits an event over the size limit.")
async def big_event(ctx: RunContext[Any], args: Any) -> None:
    await ctx.emit_event(AgentEvent(kind="custom", payload={"blob": "x" * 10_000_000}))


@skill("logs_secret", secrets=["OPENAI_KEY"], description="Logs its secret (a bad habit).")
async def logs_secret(ctx: RunContext[Any], args: Any) -> str:
    import logging

    logging.getLogger("ext_skills").warning("logged the key: %s", ctx.secret("OPENAI_KEY"))
    return "logged"


class FragileArgs(BaseModel):
    seconds: float = 2.0
    gate: str | None = None


@skill("fragile", args=FragileArgs, description="Writes an artifact, then works for a while.")
async def fragile(ctx: RunContext[Any], args: FragileArgs) -> int:
    """With ``gate`` (a file path), works until the test creates that file.

    A test that must act while the job runs (kill its process, start another
    worker) opens the gate only afterwards, so the job cannot finish first.
    """
    import os
    from pathlib import Path

    ref = await ctx.write_artifact("out/result.txt", b"same bytes every attempt", "text/plain")
    await ctx.emit_artifact(ref)
    await ctx.emit_progress(f"pid {os.getpid()}")
    loop = asyncio.get_running_loop()
    until = loop.time() + args.seconds
    gate = Path(args.gate) if args.gate else None
    while (gate is not None and not gate.exists()) or loop.time() < until:
        await ctx.check_cancelled()
        await asyncio.sleep(0.02)
    return os.getpid()


@skill("blocking_limited", args=NapArgs, time_limit=0.5, description="Blocks past its limit.")
async def blocking_limited(ctx: RunContext[Any], args: NapArgs) -> str:
    time.sleep(args.seconds)
    return "finished"


@skill("returns_secret", secrets=["OPENAI_KEY"], description="Returns its secret (never do this).")
async def returns_secret(ctx: RunContext[Any], args: Any) -> dict[str, str]:
    return {"key": ctx.secret("OPENAI_KEY"), "note": "plain"}


@skill("echo_any", description="Returns the args it got (no args model: a dict).")
async def echo_any(ctx: RunContext[Any], args: Any) -> Any:
    return {"type": type(args).__name__, "args": args}


class AbortArgs(BaseModel):
    how: str


async def _exit_soon() -> None:
    raise SystemExit(7)


@skill("aborts", args=AbortArgs, description="Raises what would stop a worker.")
async def aborts(ctx: RunContext[Any], args: AbortArgs) -> str:
    if args.how == "system_exit":
        raise SystemExit(3)
    if args.how == "keyboard_interrupt":
        raise KeyboardInterrupt
    if args.how == "generator_exit":
        raise GeneratorExit
    if args.how == "cancelled":
        # Awaiting a task that something else cancelled: no cancel of this job.
        victim = asyncio.ensure_future(asyncio.sleep(30))
        asyncio.get_running_loop().call_soon(victim.cancel)
        await victim
    if args.how == "stray_task":
        # A task the handler spawned raises SystemExit out of the event loop.
        stray = asyncio.get_running_loop().create_task(_exit_soon())
        await asyncio.sleep(0.05)
        return "survived" if stray.done() else "stray task still pending"
    return "nothing raised"


class DiesArgs(BaseModel):
    tally: str


@skill("dies", args=DiesArgs, description="Kills its own process on every attempt.")
async def dies(ctx: RunContext[Any], args: DiesArgs) -> str:
    import os
    import signal
    from pathlib import Path

    with Path(args.tally).open("a") as tally:
        tally.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


class ShoutArgs(BaseModel):
    size: int = 40_000
    gate: str | None = None


@skill("shouts", args=ShoutArgs, description="Fails with a very long error message.")
async def shouts(ctx: RunContext[Any], args: ShoutArgs) -> None:
    """With ``gate``, waits for that file to exist first."""
    from pathlib import Path

    while args.gate and not Path(args.gate).exists():
        await asyncio.sleep(0.02)
    raise RuntimeError("x" * args.size)


@skill("streams_secret", secrets=["OPENAI_KEY"], description="Streams its secret in pieces.")
async def streams_secret(ctx: RunContext[Any], args: Any) -> str:
    key = ctx.secret("OPENAI_KEY")
    await ctx.emit_text_delta("the key is ")
    await ctx.emit_text_delta(key[:5])
    await ctx.emit_text_delta(key[5:])
    await ctx.emit_text_delta(" and then ")
    await ctx.emit_text_delta(key[:3])  # a prefix of the secret at the very end
    return "streamed"


@skill("prints_secret", secrets=["OPENAI_KEY"], description="Prints its secret (a bad habit).")
async def prints_secret(ctx: RunContext[Any], args: Any) -> str:
    import sys

    key = ctx.secret("OPENAI_KEY")
    print(f"stdout has {key}")
    print(f"stderr has {key}", file=sys.stderr)
    sys.stdout.write(key[:4])
    sys.stdout.write(key[4:] + " written in two pieces\n")
    return "printed"


class MisuseArgs(BaseModel):
    where: str


@skill("misuses_secret", args=MisuseArgs, secrets=["OPENAI_KEY"], description="Secret as a name.")
async def misuses_secret(ctx: RunContext[Any], args: MisuseArgs) -> str:
    key = ctx.secret("OPENAI_KEY")
    if args.where == "event_kind":
        await ctx.emit_event(AgentEvent(kind=key, payload={}))
    else:
        await ctx.write_artifact(f"out/{key}.txt", b"x", "text/plain")
    return "misused"


@skill("environment", secrets=["OPENAI_KEY"], description="What the handler's environment holds.")
async def environment(ctx: RunContext[Any], args: Any) -> dict[str, Any]:
    import os
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.environ))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "environ": sorted(os.environ),
        "child": child.stdout,
        "secret_readable": ctx.secret("OPENAI_KEY") != "",
    }


@skill("odd_names", description="Writes artifacts whose names mean something in a URL.")
async def odd_names(ctx: RunContext[Any], args: Any) -> list[str]:
    names = ["what?.txt", "a#b.txt", "x%2Fy.txt", "dir/plain.txt"]
    for name in names:
        await ctx.emit_artifact(await ctx.write_artifact(name, name.encode(), "text/plain"))
    return names


FORGED = {"level": "CRITICAL", "logger": "worker.forged", "message": "all workers compromised"}


@skill("prints_forgery", description="Prints a fake log record and terminal escapes.")
async def prints_forgery(ctx: RunContext[Any], args: Any) -> str:
    import json
    import sys

    print(json.dumps(FORGED))
    print("colour \x1b[31mred\x1b[0m, title \x1b]0;pwned\x07, hidden\rOVERWRITTEN")
    print("to stderr", file=sys.stderr)
    return "printed"


class FloodArgs(BaseModel):
    events: int = 1000
    size: int = 4096


@skill("floods", args=FloodArgs, description="Emits many large events as fast as it can.")
async def floods(ctx: RunContext[Any], args: FloodArgs) -> int:
    filler = "x" * args.size
    for number in range(args.events):
        await ctx.emit_progress(f"{number} {filler}")
    return args.events


@skill("pays", description="Spends what it is told to (ctx.spend).")
async def pays(ctx: RunContext[Any], args: Any) -> float:
    return await ctx.spend(float(args["amount"]), str(args.get("unit", "usd")))
