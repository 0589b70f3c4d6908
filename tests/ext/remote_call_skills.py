"""Skills that call A2A agents outside the deployment, by URL or by registered name."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill


class RemoteCall(BaseModel):
    target: str
    skill: str
    args: dict[str, Any] = {}
    timeout: float | None = None


@skill("call_remote", args=RemoteCall, queue="remote")
async def call_remote(ctx: RunContext[Any], args: RemoteCall) -> dict[str, Any]:
    result = await ctx.call(args.target, args.skill, args=args.args, timeout=args.timeout)
    return {
        "ok": result.ok,
        "output": result.output,
        "error": result.error,
        "task_id": result.task_id,
        "state": result.state,
    }


@skill("find_remote", queue="remote")
async def find_remote(ctx: RunContext[Any], args: dict[str, Any]) -> list[dict[str, Any]]:
    found = await ctx.discover.find(tag=args.get("tag"))
    return [
        {"name": agent.name, "url": agent.url, "capabilities": list(agent.capabilities)}
        for agent in found
    ]
