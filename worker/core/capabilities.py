"""Capability surfaces a runtime may attach to a :class:`RunContext`.

They are protocols so that skill code depends on behaviour, not on a
transport: a local test passes an in-memory object, a deployment passes a
networked client, and neither needs to inherit from anything here.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class SandboxUnavailable(RuntimeError):
    """The runtime attached no sandbox to this context.

    A distinct type so a skill can degrade gracefully (skip code execution)
    instead of treating the absence like any other failure.
    """


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one code execution in a sandbox."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


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

    async def delegate(self, scopes: builtins.list[str], *, ttl: float = 300.0) -> str:
        """Return a grant token that lets a callee use part of this workspace."""
        ...


@runtime_checkable
class SandboxClient(Protocol):
    """Isolated code execution."""

    async def run(
        self, code: str, *, language: str = "python", timeout: float | None = None
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
