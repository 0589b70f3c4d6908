"""Outbound agent-to-agent calls (``ctx.call``)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class CallResult(BaseModel):
    """What a called skill returned; ``ok`` is False when it failed."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    output: Any = None
    error: str | None = None
    task_id: str | None = None


@runtime_checkable
class A2AClient(Protocol):
    """Invokes a skill of another agent and awaits its outcome."""

    async def call(
        self,
        target: str,
        skill: str,
        *,
        args: dict[str, Any] | None = None,
        grant: str | None = None,
        timeout: float | None = None,
    ) -> CallResult: ...
