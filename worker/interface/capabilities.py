"""Capability surfaces a runtime may attach to a :class:`RunContext`.

They are protocols so that skill code depends on behaviour, not on a
transport: a local test passes an in-memory object, a deployment passes a
networked client, and neither needs to inherit from anything here.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from ..core.errors import SandboxUnavailable as SandboxUnavailable  # part of the interface
from .a2a import A2AClient


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one code execution in a sandbox.

    ``exit_code`` is the program's status (128 + N when signal N ended it, -9
    when the timeout killed it); ``timed_out`` says the wall-clock timeout
    ended it; ``truncated`` that stdout or stderr went over the output cap (the
    cut stream ends with a line saying so); ``duration`` is wall-clock seconds.
    """

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class AgentInfo:
    """One agent found through discovery."""

    name: str
    url: str
    skills: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class WorkspaceClient(Protocol):
    """Scoped file access negotiated with the caller's workspace."""

    async def read(self, path: str) -> bytes: ...

    async def write(self, path: str, data: bytes) -> None: ...

    async def list(self, prefix: str = "") -> builtins.list[str]: ...

    async def delegate(self, scopes: builtins.list[str], *, ttl: float | None = None) -> str:
        """Return a grant token that lets a callee use part of this workspace."""
        ...


@runtime_checkable
class SandboxClient(Protocol):
    """Isolated code execution."""

    async def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> SandboxResult: ...


@runtime_checkable
class DiscoveryClient(Protocol):
    """Registry lookups: which agents offer a tag, capability or skill."""

    async def find(
        self,
        *,
        tag: str | None = None,
        capability: str | None = None,
        skill: str | None = None,
    ) -> list[AgentInfo]: ...


@dataclass(frozen=True)
class JobScope:
    """The running job a capability client is bound to (see :meth:`Capabilities.for_job`).

    ``claims`` are the verified caller identity the job runs with (what a
    child job inherits), ``deadline`` the ``time.monotonic()`` at which the
    job's time limit ends (None: no limit), ``on_cancel`` registers a callback
    for when the job is cancelled.
    """

    job_id: str
    skill: str
    claims: dict[str, Any]
    deadline: float | None
    on_cancel: Callable[[Callable[[], None]], None]
    worker: str = ""  # the worker running it (children running inline name it too)
    cancelled: Callable[[], bool] = lambda: False  # whether a cancel of the job was asked
    grant: str | None = None  # the workspace grant token the job came with
    workspace_access: bool = False  # the skill declares workspace_access=True


@dataclass(frozen=True)
class Unavailable:
    """What a job-opened capability gives a job that may not use it, and why."""

    reason: str


@runtime_checkable
class JobBound(Protocol):
    """A capability client that needs to know which job uses it (e.g. calls)."""

    def bind(self, scope: JobScope) -> Any: ...


@runtime_checkable
class JobOpened(Protocol):
    """A capability that must check something before a job may use it (a workspace
    verifies the job's grant); what :meth:`open` raises fails the job."""

    async def open(self, scope: JobScope) -> Any: ...


CAPABILITY_NAMES = {
    "a2a": "call",
    "discover": "discover",
    "workspace": "workspace",
    "sandbox": "sandbox",
}


@dataclass(frozen=True)
class Capabilities:
    """The clients a runtime attaches to every context (None: not attached)."""

    workspace: WorkspaceClient | JobOpened | Unavailable | None = None
    sandbox: SandboxClient | None = None
    discover: DiscoveryClient | None = None
    a2a: A2AClient | JobBound | None = None  # ``ctx.call``; job-bound ones are bound per job

    def names(self) -> list[str]:
        """What an agent announces it offers: ``call``, ``discover``, ..."""
        return sorted(name for attr, name in CAPABILITY_NAMES.items() if getattr(self, attr))

    def merged(self, overrides: Mapping[str, Any] | Capabilities) -> Capabilities:
        """These, with what an operator's factory returned put over them."""
        given = (
            {attr: getattr(overrides, attr) for attr in CAPABILITY_NAMES}
            if isinstance(overrides, Capabilities)
            else dict(overrides)
        )
        unknown = set(given) - set(CAPABILITY_NAMES)
        if unknown:
            raise ValueError(
                f"unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITY_NAMES)}"
            )
        return replace(self, **{key: value for key, value in given.items() if value is not None})

    async def for_job(self, scope: JobScope) -> Capabilities:
        """Each job-bound client bound to ``scope``, each job-opened one opened;
        the others as they are."""
        if not self._per_job:
            return self
        bound: dict[str, Any] = {}
        for attr, opened in self._per_job:
            value = getattr(self, attr)
            bound[attr] = await value.open(scope) if opened else value.bind(scope)
        return replace(self, **bound)

    @cached_property
    def _per_job(self) -> tuple[tuple[str, bool], ...]:
        """The job-opened (True) and job-bound (False) attributes, found once:
        ``isinstance`` against a runtime-checkable protocol is slow, and every
        job asks."""
        found = []
        for attr in CAPABILITY_NAMES:
            value = getattr(self, attr)
            if isinstance(value, JobOpened):
                found.append((attr, True))
            elif isinstance(value, JobBound):
                found.append((attr, False))
        return tuple(found)
