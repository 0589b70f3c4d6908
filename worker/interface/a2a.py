"""Outbound agent-to-agent calls (``ctx.call``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from .artifact_ref import ArtifactRef


class CallResult(BaseModel):
    """What a called skill returned; ``ok`` is False when it failed.

    ``task_id`` is the callee's job (a child job in skillq), ``state`` its
    final state (``succeeded``, ``failed``, ``cancelled``; None when no job
    was started, e.g. an unknown skill) and ``artifacts`` what it wrote.
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    output: Any = None
    error: str | None = None
    task_id: str | None = None
    state: str | None = None
    artifacts: list[ArtifactRef] = []


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
        budget: Mapping[str, float] | None = None,
    ) -> CallResult:
        """``budget``: what the callee may ``ctx.spend`` (skillq jobs; a remote
        agent's own spending is not seen). Passed only when given, so clients
        written before budgets keep working."""
        ...
