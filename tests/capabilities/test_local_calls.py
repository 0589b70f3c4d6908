"""The calling skills of tests/ext/agent_skills.py, unchanged, on
``LocalRunContext`` with the in-memory caller and discovery: no Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.ext import agent_skills
from worker import AgentInfo, LocalCaller, LocalDiscovery, LocalRunContext, NoAuth, ScopedAuth
from worker.interface.skills import AnyArgs

ALL = [
    agent_skills.square,
    agent_skills.delegate,
    agent_skills.chain,
    agent_skills.chain2,
    agent_skills.fan_out,
    agent_skills.cycle,
    agent_skills.napper,
    agent_skills.guarded,
    agent_skills.call_one,
]
PLANNER = AgentInfo(
    name="planner", url="skillq://planner", skills=tuple(s.name for s in ALL), tags=("math",)
)


def context(auth: Any = None, **claims: Any) -> LocalRunContext[Any]:
    return LocalRunContext(
        auth=auth or NoAuth(),
        a2a=LocalCaller(ALL, agents={"planner": [s.name for s in ALL]}, auth=claims),
        discover=LocalDiscovery([PLANNER]),
    )


def run(skill: Any, args: dict[str, Any], ctx: LocalRunContext[Any] | None = None) -> Any:
    """Call the handler the way a worker would: args validated by its model."""
    parsed = args if skill.args is AnyArgs else skill.args.model_validate(args)

    async def call() -> Any:
        return await skill(ctx or context(), parsed)

    return asyncio.run(call())


def test_discover_and_call() -> None:
    out = run(agent_skills.delegate, {"tag": "math", "call": "square", "args": {"n": 4}})
    assert out["agents"] == ["planner"]
    assert out["call"]["ok"] and out["call"]["output"] == 16
    assert out["call"]["artifacts"][0]["name"] == "square.txt"


def test_chains_fan_out_and_the_depth_cap() -> None:
    assert run(agent_skills.chain, {"steps": ["chain2", "chain"]}) == ["chain2", ["chain", "end"]]
    assert run(agent_skills.fan_out, {"count": 5}) == [0, 1, 4, 9, 16]
    level: dict[str, Any] = run(agent_skills.cycle, {})
    depth = 0
    while level["ok"]:
        level, depth = level["output"], depth + 1
    assert depth == 8 and "over the limit of 8" in level["error"]


def test_refusals_timeouts_and_scopes() -> None:
    ctx = context(auth=ScopedAuth(scopes=["text:read"]), scopes=["text:read"])
    bad = run(agent_skills.call_one, {"target": "nobody", "skill": "square"}, ctx)
    assert bad["ok"] is False and "unknown agent 'nobody'" in bad["error"]
    invalid = run(agent_skills.call_one, {"skill": "square", "args": {"n": "x"}}, ctx)
    assert invalid["ok"] is False and "invalid args" in invalid["error"]
    slow = run(
        agent_skills.call_one,
        {"skill": "napper", "args": {"seconds": 5}, "timeout": 0.1},
        ctx,
    )
    assert slow["ok"] is False and slow["state"] == "cancelled" and "timed out" in slow["error"]
    assert run(agent_skills.call_one, {"skill": "guarded"}, ctx)["output"] == ["text:read"]
    denied = run(agent_skills.call_one, {"skill": "guarded"}, context(auth=ScopedAuth()))
    assert denied["ok"] is False and "text:read" in denied["error"]
