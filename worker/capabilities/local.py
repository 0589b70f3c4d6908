"""In-memory discovery and calls, so a skill that finds and calls other skills
can be unit-tested on :class:`~worker.core.context.LocalRunContext` without
Redis or workers, with the same results a worker gives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.a2a import CallResult
from ..core.agents import agent_name, matching
from ..core.capabilities import AgentInfo
from ..core.context import CancelledByCaller, LocalRunContext, MissingScopes
from ..core.skills import AnyArgs, Skill


class LocalDiscovery:
    """``ctx.discover`` over a fixed list of agents."""

    def __init__(self, agents: Iterable[AgentInfo]) -> None:
        self._agents = list(agents)

    async def find(
        self,
        *,
        tag: str | None = None,
        capability: str | None = None,
        skill: str | None = None,
    ) -> list[AgentInfo]:
        return matching(self._agents, tag=tag, capability=capability, skill=skill)


class LocalCaller:
    """``ctx.call`` that runs skills in this process on fresh ``LocalRunContext``s.

    ``skills`` are the callable skills (``@skill`` values); ``agents`` maps an
    agent name to the skills it serves (by default one agent, ``local``,
    serves them all); ``auth`` is the caller's identity the callees get and
    ``secrets`` what they may read.
    Children get this caller too, so chains work, up to ``max_depth``.
    """

    def __init__(
        self,
        skills: Iterable[Skill],
        *,
        agents: Mapping[str, Iterable[str]] | None = None,
        auth: BaseModel | Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        max_depth: int = 8,
        _depth: int = 0,
    ) -> None:
        self.skills = {item.name: item for item in skills}
        self.agents = {k: set(v) for k, v in (agents or {"local": set(self.skills)}).items()}
        self._claims = auth.model_dump() if isinstance(auth, BaseModel) else dict(auth or {})
        self._secrets = dict(secrets or {})
        self._max_depth = max_depth
        self._depth = _depth
        self.children: list[LocalRunContext[Any]] = []  # every context a call ran in

    async def call(
        self,
        target: str,
        skill: str,
        *,
        args: dict[str, Any] | None = None,
        grant: str | None = None,
        timeout: float | None = None,
    ) -> CallResult:
        name = agent_name(target)
        if name not in self.agents:
            return CallResult(
                ok=False, error=f"unknown agent {name!r}; known: {sorted(self.agents)}"
            )
        if skill not in self.agents[name] or skill not in self.skills:
            served = sorted(self.agents[name])
            return CallResult(
                ok=False, error=f"agent {name!r} has no skill {skill!r}; it serves {served}"
            )
        if self._depth + 1 > self._max_depth:
            return CallResult(
                ok=False,
                error=f"call depth {self._depth + 1} is over the limit of {self._max_depth} "
                "(a skill calling itself in a cycle?)",
            )
        callee = self.skills[skill]
        try:
            parsed = (
                (args or {}) if callee.args is AnyArgs else callee.args.model_validate(args or {})
            )
            auth = callee.auth.model_validate(self._claims)
        except ValidationError as exc:
            return CallResult(ok=False, error=f"invalid args for skill {skill!r}: {exc}")
        child = LocalRunContext(
            auth=auth,
            task_id=f"local-{uuid.uuid4().hex[:12]}",
            secrets=self._secrets,
            a2a=LocalCaller(
                self.skills.values(),
                agents=self.agents,
                auth=self._claims,
                secrets=self._secrets,
                max_depth=self._max_depth,
                _depth=self._depth + 1,
            ),
        )
        self.children.append(child)
        try:
            child.require_scopes(callee.scopes)
            value = await asyncio.wait_for(callee.handler(child, parsed), timeout)
        except TimeoutError:
            return self._failed(child, "cancelled", f"timed out after {timeout} s")
        except MissingScopes as exc:
            return self._failed(child, "failed", f"skill {skill!r}: {exc}")
        except CancelledByCaller:
            return self._failed(child, "cancelled", f"skill {skill!r} was cancelled")
        except Exception as exc:
            return self._failed(child, "failed", f"{type(exc).__name__}: {exc}")
        output = callee.result_adapter.dump_python(
            callee.result_adapter.validate_python(value), mode="json"
        )
        return CallResult(
            ok=True,
            output=output,
            task_id=child.task_id,
            state="succeeded",
            artifacts=child.artifact_refs(),
        )

    @staticmethod
    def _failed(child: LocalRunContext[Any], state: str, error: str) -> CallResult:
        return CallResult(
            ok=False,
            error=error,
            task_id=child.task_id,
            state=state,
            artifacts=child.artifact_refs(),
        )
