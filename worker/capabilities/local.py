"""In-memory discovery, calls and workspaces, so a skill that finds and calls
other skills or uses a workspace can be unit-tested on
:class:`~worker.interface.context.LocalRunContext` without Redis or workers, with
the same results (and the same grant checks) a worker gives."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.errors import InvalidGrant, SkillqError
from ..core.settings import Settings
from ..interface.a2a import CallResult
from ..interface.capabilities import AgentInfo, SandboxClient
from ..interface.context import CancelledByCaller, LocalRunContext, MissingScopes
from ..interface.skills import AnyArgs, Skill
from ..store.agents import agent_name, matching
from ..workspace.grants import Grant, GrantSigner
from ..workspace.workspace_client import GrantedWorkspace
from ..workspace.workspace_store import FileWorkspaceStore, MemoryWorkspaceStore, WorkspaceStore
from .sandbox import select_sandbox

LOCAL_MAX_TTL = 7 * 86400.0


def local_sandbox(settings: Settings | None = None) -> SandboxClient | None:
    """The sandbox a worker with these settings attaches (by default bwrap when it
    works on this host, else None), to pass to ``LocalRunContext(sandbox=...)``."""
    return select_sandbox(settings or Settings(), quiet=True)


class LocalWorkspaces:
    """Workspaces in a dict (or under ``directory``), with grants signed by a key
    of their own: ``grant`` mints, ``open`` gives the client a job would get.

    ``put`` and ``get`` reach the files without a grant, to set up inputs and
    check outputs in a test.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        key = secrets.token_bytes(32)
        self.signer = GrantSigner(
            algorithm="HS256", signing_key=key, verifying_key=key, max_ttl=LOCAL_MAX_TTL
        )
        self.store: WorkspaceStore = (
            MemoryWorkspaceStore() if directory is None else FileWorkspaceStore(Path(directory))
        )
        self.revoked: set[str] = set()

    def grant(self, workspace: str, scopes: list[str], *, ttl: float = 3600.0) -> str:
        return self.signer.mint(workspace, scopes, ttl=ttl)

    def revoke(self, grant_id: str) -> None:
        self.revoked.add(grant_id)

    async def _not_revoked(self, grant: Grant) -> None:
        if self.revoked.intersection(grant.lineage):
            raise InvalidGrant(f"grant {grant.id} was revoked")

    def open(self, token: str) -> GrantedWorkspace:
        grant = self.signer.verify(token)
        if self.revoked.intersection(grant.lineage):
            raise InvalidGrant(f"grant {grant.id} was revoked")
        return GrantedWorkspace(grant, self.store, self.signer, self._not_revoked)

    async def put(self, workspace: str, path: str, data: bytes) -> None:
        await self.store.write(workspace, path, data)

    async def get(self, workspace: str, path: str) -> bytes:
        return await self.store.read(workspace, path)


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
    ``secrets`` what they may read; ``workspaces`` opens the grants passed
    with ``ctx.call(..., grant=...)`` for callees that declare workspace access.
    Children get this caller too, so chains work, up to ``max_depth``.
    """

    def __init__(
        self,
        skills: Iterable[Skill],
        *,
        agents: Mapping[str, Iterable[str]] | None = None,
        auth: BaseModel | Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        workspaces: LocalWorkspaces | None = None,
        max_depth: int = 8,
        _depth: int = 0,
    ) -> None:
        self.skills = {item.name: item for item in skills}
        self.agents = {k: set(v) for k, v in (agents or {"local": set(self.skills)}).items()}
        self._claims = auth.model_dump() if isinstance(auth, BaseModel) else dict(auth or {})
        self._secrets = dict(secrets or {})
        self._workspaces = workspaces
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
        budget: Mapping[str, float] | None = None,
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
        try:
            workspace = self._workspace_for(callee, grant)
        except SkillqError as exc:
            return CallResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        child = LocalRunContext(
            auth=auth,
            task_id=f"local-{uuid.uuid4().hex[:12]}",
            secrets=self._secrets,
            workspace=workspace,
            a2a=LocalCaller(
                self.skills.values(),
                agents=self.agents,
                auth=self._claims,
                secrets=self._secrets,
                workspaces=self._workspaces,
                max_depth=self._max_depth,
                _depth=self._depth + 1,
            ),
            budget={**callee.budget, **dict(budget or {})},
            on_budget=callee.on_budget,
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

    def _workspace_for(self, callee: Skill, grant: str | None) -> GrantedWorkspace | None:
        """The callee's workspace, checked as a worker checks it."""
        if grant is None:
            return None
        if not callee.workspace_access:
            raise InvalidGrant.without_access(callee.name)
        if self._workspaces is None:
            raise InvalidGrant("this LocalCaller has no workspaces to open grants in")
        return self._workspaces.open(grant)

    @staticmethod
    def _failed(child: LocalRunContext[Any], state: str, error: str) -> CallResult:
        return CallResult(
            ok=False,
            error=error,
            task_id=child.task_id,
            state=state,
            artifacts=child.artifact_refs(),
        )
