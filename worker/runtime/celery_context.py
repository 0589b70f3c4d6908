"""The :class:`RunContext` that skills get on a Celery worker."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from ..core.errors import InvalidArtifactName, InvalidEvent, InvalidResult
from ..core.secrets import SecretScope
from ..interface.a2a import A2AClient
from ..interface.budgets import Ledger, OnBudget, RaiseBudget
from ..interface.capabilities import (
    Capabilities,
    DiscoveryClient,
    SandboxClient,
    SandboxUnavailable,
    Unavailable,
    WorkspaceClient,
)
from ..interface.context import AgentEvent, ArtifactRef, AuthT, CancelledByCaller, RunContext
from ..interface.steps import StepDone, StepRunner
from ..interface.suspend import Asks, Sleeps
from ..store.artifacts import ArtifactStore
from ..store.events import EventWriter, encode_event, encode_text_delta
from ..store.job_status import ArtifactInfo
from ..store.jobs import JobStore
from .cancellation import CancelToken
from .observed import Observed, TracedSandbox

TEXT_DELTA = "text_delta"
SLEEP_FIELD = "sleep:"


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
        workspace_access: bool = False,
        skill: str = "",
        observed: Observed | None = None,
        delivery: str = "",
        ledger: Ledger | None = None,
        on_budget: OnBudget = "fail",
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
        self._workspace_access = workspace_access
        self._skill = skill
        self._held_text = ""
        self._observed = observed or Observed()
        self._delivery = delivery
        self._spending = ledger
        self._on_budget = on_budget

    async def emit_event(self, event: AgentEvent) -> None:
        if isinstance(event.kind, str) and self._secrets.redact(event.kind) != event.kind:
            raise InvalidEvent("an event kind contains a secret; put values in the payload")
        payload = event.payload
        if event.kind == TEXT_DELTA and isinstance(payload, dict) and set(payload) == {"text"}:
            text = payload["text"]
            if isinstance(text, str):
                await self._stream_text(text)
                return
        await self.flush_text()
        encoded = encode_event(
            event.kind, payload, max_bytes=self._max_event_bytes, redact=self._secrets.redact
        )
        await self._events.write(encoded)

    async def _stream_text(self, text: str) -> None:
        """Emit streamed text, holding back an end that may begin a secret.

        LLM tokens split a secret across chunks (``sk-pro`` + ``be-...``), and
        each chunk alone passes redaction. The held end is joined to the next
        chunk, or emitted by :meth:`flush_text` before any other event and
        when the job ends.
        """
        joined = self._secrets.redact(self._held_text + text)
        hold = self._secrets.partial_suffix(joined)
        ready, self._held_text = joined[: len(joined) - hold], joined[len(joined) - hold :]
        if ready:
            await self._write_text(ready)

    async def flush_text(self) -> None:
        if self._held_text:
            held, self._held_text = self._held_text, ""
            await self._write_text(held)

    async def _write_text(self, text: str) -> None:
        # Already redacted (with the held-back end): encoded without a second pass.
        await self._events.write(encode_text_delta(text, max_bytes=self._max_event_bytes))

    async def write_artifact(self, name: str, data: bytes, mime_type: str) -> ArtifactRef:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"artifact data must be bytes, not {type(data).__name__}")
        if isinstance(name, str) and self._secrets.redact(name) != name:
            raise InvalidArtifactName(self._secrets.redact(name), "it contains a secret")
        with self._observed.span("skillq.artifact", {"skillq.artifact": name, "size": len(data)}):
            ref = await self._artifacts.put(self.task_id, name, bytes(data), mime_type)
        self._observed.metrics.artifact_written(self._skill, ref.size_bytes)
        info = ArtifactInfo(
            name=ref.name,
            uri=ref.uri,
            mime_type=ref.mime_type,
            size_bytes=ref.size_bytes,
            created_at=time.time(),
        )
        await self._jobs.record_artifact(self.task_id, info, self._delivery)
        return ref

    def _steps(self) -> StepRunner:
        """Finished steps kept in the job's record, fenced by this delivery."""
        runner: StepRunner | None = self.__dict__.get("_step_runner")
        if runner is None:

            async def load(name: str) -> StepDone | None:
                return await self._jobs.load_step(self.task_id, name)

            async def save(name: str, done: StepDone) -> None:
                await self._jobs.record_step(self.task_id, name, done, self._delivery)

            async def emit(kind: str, payload: dict[str, Any]) -> None:
                await self.emit_event(AgentEvent(kind, payload))

            def check(name: str, text: str) -> None:
                if self._secrets.redact(text) != text:
                    raise InvalidResult(
                        f"step {name!r} returned a secret; a step's result is kept in the job "
                        "record, where secrets never go"
                    )

            runner = self.__dict__["_step_runner"] = StepRunner(load, save, emit, check)
        return runner

    async def sleep(self, seconds: float) -> None:
        """A durable sleep: the attempt ends and the job runs again when it wakes."""
        sleeps: Sleeps | None = self.__dict__.get("_sleeps")
        if sleeps is None:

            async def load(key: str) -> str | None:
                return await self._jobs.load_field(self.task_id, SLEEP_FIELD + key)

            async def save(key: str, value: str) -> None:
                await self._jobs.record_field(
                    self.task_id, SLEEP_FIELD + key, value, self._delivery
                )

            sleeps = self.__dict__["_sleeps"] = Sleeps(load, save)
        await self.flush_text()
        await sleeps.sleep(seconds)

    async def ask(
        self, question: str, *, schema: type[BaseModel] | None = None, timeout: float | None = None
    ) -> Any:
        """The job waits ``input_required`` for ``client.respond``, holding no slot."""
        await self.flush_text()
        return await self._asks().ask(self._secrets.redact(question), schema, timeout)

    def _asks(self) -> Asks:
        # Kept under a name of its own: under "_asks" the instance's value would
        # hide this method, and a second ask in one run would call the Asks.
        asks: Asks | None = self.__dict__.get("_asks_made")
        if asks is None:

            async def load(key: str) -> str | None:
                return await self._jobs.load_field(self.task_id, key)

            async def save(key: str, value: str) -> None:
                await self._jobs.record_field(self.task_id, key, value, self._delivery)

            asks = self.__dict__["_asks_made"] = Asks(self.task_id, load, save)
        return asks

    def _ledger(self) -> Ledger:
        return self._spending or super()._ledger()

    async def spend(self, amount: float, unit: str = "usd") -> float:
        left = await super().spend(amount, unit)
        self._observed.metrics.spent(self._skill, unit, float(amount))
        return left

    async def _budget_ask(self, number: int, question: str) -> RaiseBudget:
        """A budget's question is numbered by the crossing, not by the order of
        the handler's asks (:func:`worker.interface.budgets.question_number`)."""
        await self.flush_text()
        answer: RaiseBudget = await self._asks().ask_as(number, question, RaiseBudget, None)
        return answer

    async def check_cancelled(self) -> None:
        if self._token.cancelled:
            raise CancelledByCaller(self.task_id)

    def secret(self, name: str) -> str:
        return self._secrets.get(name)

    @property
    def workspace(self) -> WorkspaceClient:
        workspace = self._capabilities.workspace
        if not self._workspace_access:
            raise PermissionError(
                f"skill {self._skill!r} does not declare workspace access: "
                "use @skill(..., workspace_access=True)"
            )
        if workspace is None:
            raise PermissionError(
                "no workspace is provisioned on this worker: set SKILLQ_GRANT_KEY (or "
                "SKILLQ_GRANT_PUBLIC_KEY) so it can verify grants"
            )
        if isinstance(workspace, Unavailable):
            raise PermissionError(workspace.reason)
        if not isinstance(workspace, WorkspaceClient):
            raise PermissionError("the workspace capability was not opened for this job")
        return workspace

    @property
    def sandbox(self) -> SandboxClient:
        if self._capabilities.sandbox is None:
            raise SandboxUnavailable("no sandbox client is attached to skills on this worker")
        if not self._observed.tracing.enabled:
            return self._capabilities.sandbox
        return TracedSandbox(self._capabilities.sandbox, self._observed)

    @property
    def discover(self) -> DiscoveryClient:
        if self._capabilities.discover is None:
            raise PermissionError("no discovery client is attached to skills on this worker")
        return self._capabilities.discover

    def _a2a_client(self) -> A2AClient:
        client = self._capabilities.a2a
        if client is None or not isinstance(client, A2AClient):
            raise PermissionError("no A2A client is attached; ctx.call(...) is unavailable")
        return client
