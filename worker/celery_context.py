"""The :class:`RunContext` that skills get on a Celery worker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .a2a import A2AClient
from .artifacts import ArtifactStore
from .cancellation import CancelToken
from .capabilities import DiscoveryClient, SandboxClient, SandboxUnavailable, WorkspaceClient
from .context import AgentEvent, ArtifactRef, AuthT, CancelledByCaller, RunContext
from .events import EventWriter, encode_event
from .jobs import ArtifactInfo, JobStore
from .secrets import SecretScope


@dataclass(frozen=True)
class Capabilities:
    """Optional clients a deployment attaches to every context."""

    workspace: WorkspaceClient | None = None
    sandbox: SandboxClient | None = None
    discover: DiscoveryClient | None = None
    a2a: A2AClient | None = None


class CeleryRunContext(RunContext[AuthT]):
    """Events to Redis, artifacts to the configured store, cancels from the token."""

    def __init__(
        self,
        *,
        task_id: str,
        auth: AuthT,
        events: EventWriter,
        jobs: JobStore,
        artifacts: ArtifactStore,
        secrets: SecretScope,
        token: CancelToken,
        max_event_bytes: int,
        capabilities: Capabilities = Capabilities(),
    ) -> None:
        self.task_id = task_id
        self.auth = auth
        self._events = events
        self._jobs = jobs
        self._artifacts = artifacts
        self._secrets = secrets
        self._token = token
        self._max_event_bytes = max_event_bytes
        self._capabilities = capabilities

    async def emit_event(self, event: AgentEvent) -> None:
        encoded = encode_event(
            event.kind, event.payload, max_bytes=self._max_event_bytes, redact=self._secrets.redact
        )
        await self._events.write(encoded)

    async def write_artifact(self, name: str, data: bytes, mime_type: str) -> ArtifactRef:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"artifact data must be bytes, not {type(data).__name__}")
        ref = await self._artifacts.put(self.task_id, name, bytes(data), mime_type)
        info = ArtifactInfo(
            name=ref.name,
            uri=ref.uri,
            mime_type=ref.mime_type,
            size_bytes=ref.size_bytes,
            created_at=time.time(),
        )
        await self._jobs.record_artifact(self.task_id, info)
        return ref

    async def check_cancelled(self) -> None:
        if self._token.cancelled:
            raise CancelledByCaller(self.task_id)

    def secret(self, name: str) -> str:
        return self._secrets.get(name)

    @property
    def workspace(self) -> WorkspaceClient:
        if self._capabilities.workspace is None:
            raise PermissionError("no workspace is provisioned for skills on this worker")
        return self._capabilities.workspace

    @property
    def sandbox(self) -> SandboxClient:
        if self._capabilities.sandbox is None:
            raise SandboxUnavailable("no sandbox client is attached to skills on this worker")
        return self._capabilities.sandbox

    @property
    def discover(self) -> DiscoveryClient:
        if self._capabilities.discover is None:
            raise PermissionError("no discovery client is attached to skills on this worker")
        return self._capabilities.discover

    def _a2a_client(self) -> A2AClient:
        if self._capabilities.a2a is None:
            raise PermissionError("no A2A client is attached; ctx.call(...) is unavailable")
        return self._capabilities.a2a
