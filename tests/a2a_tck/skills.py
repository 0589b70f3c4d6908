"""The one skill the conformance kit talks to. The kit sends plain text and
names no skill, so this deployment serves exactly one: a conversation that
echoes each message and asks for the next (input-required) until it is told
``bye``, the kind of multi-turn agent the kit's continuation tests assume."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill


class Reply(BaseModel):
    text: str = ""


@skill("tck_agent", queue="tck", description="Echoes each message and asks for the next.")
async def tck_agent(ctx: RunContext[Any], args: dict[str, Any]) -> dict[str, str]:
    said = [str(args.get("text", ""))]
    while said[-1].strip().lower() != "bye":
        reply = await ctx.ask(f"Echo: {said[-1]} (say bye to end)", schema=Reply, timeout=600)
        said.append(reply.text)
    return {"text": "Echo: " + " / ".join(said)}
