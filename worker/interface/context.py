"""The interface skill handlers are written against.

Handlers depend only on :class:`RunContext`; the runtime decides where
events, artifacts, secrets and cancellation come from. :class:`LocalRunContext`
keeps everything in memory for unit tests and local development.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

# Part of the interface; defined with the other errors so that they share one base.
from ..core.errors import CancelledByCaller as CancelledByCaller
from ..core.errors import MissingScopes as MissingScopes
from .a2a import A2AClient, CallResult
from .artifact_ref import ArtifactRef as ArtifactRef  # re-exported: part of the interface
from .budgets import Ledger, LocalLedger, OnBudget, RaiseBudget, spend
from .capabilities import DiscoveryClient, SandboxClient, SandboxUnavailable, WorkspaceClient
from .steps import StepDone, StepRunner

AuthT = TypeVar("AuthT", bound=BaseModel)


@dataclass(frozen=True)
class AgentEvent:
    """A structured event emitted during a skill run."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


class RunContext(ABC, Generic[AuthT]):
    """Per-invocation context, built by the runtime for every skill call.

    It carries the caller's identity (``auth``), the job identity
    (``task_id``) and the runtime's capabilities. Skills must depend on this
    abstract interface only, so the same handler runs locally, in tests and
    on Celery workers.
    """

    task_id: str
    auth: AuthT

    @abstractmethod
    async def emit_event(self, event: AgentEvent) -> None:
        """Publish a structured event to subscribers."""

    @abstractmethod
    async def write_artifact(self, name: str, data: bytes, mime_type: str) -> ArtifactRef:
        """Persist ``data`` as a named artifact and return a reference."""

    @abstractmethod
    async def check_cancelled(self) -> None:
        """Raise :class:`CancelledByCaller` if the caller cancelled."""

    @abstractmethod
    def secret(self, name: str) -> str:
        """Return a runtime-injected secret by logical name."""

    @property
    @abstractmethod
    def workspace(self) -> WorkspaceClient:
        """Workspace access; raises if none was provisioned for this call."""

    @property
    @abstractmethod
    def sandbox(self) -> SandboxClient:
        """Code execution; raises :class:`SandboxUnavailable` if none is attached."""

    @property
    @abstractmethod
    def discover(self) -> DiscoveryClient:
        """Find other agents by tag, capability or skill."""

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
        """Invoke another agent's skill through the runtime's :class:`A2AClient`.

        ``target`` is whatever that client understands: a URL for
        :class:`~worker.capabilities.http_a2a.HttpA2AClient`, an agent name for in-process
        routing. Pair with :meth:`WorkspaceClient.delegate` to hand the callee
        a scoped workspace grant. ``budget={"usd": 0.2}``: the share of what is
        left that the callee may spend; its spending counts against this job's
        budget too, so a share can never let the tree spend more.
        """
        client = self._a2a_client()
        if budget is None:
            return await client.call(target, skill, args=args, grant=grant, timeout=timeout)
        return await client.call(
            target, skill, args=args, grant=grant, timeout=timeout, budget=budget
        )

    @abstractmethod
    def _a2a_client(self) -> A2AClient:
        """Return the runtime's outbound A2A client, or raise if there is none."""

    # Helpers built on emit_event, so every runtime gets the same payload shapes.

    async def emit_progress(self, message: str) -> None:
        """Emit a human-readable progress event."""
        await self.emit_event(AgentEvent(kind="progress", payload={"message": message}))

    async def emit_text_delta(self, text: str) -> None:
        """Emit a streamed chunk of text (LLM-style output)."""
        await self.emit_event(AgentEvent(kind="text_delta", payload={"text": text}))

    async def emit_artifact(self, ref: ArtifactRef) -> None:
        """Tell subscribers that a new artifact is available."""
        await self.emit_event(
            AgentEvent(
                kind="artifact",
                payload={
                    "name": ref.name,
                    "uri": ref.uri,
                    "mime_type": ref.mime_type,
                    "size_bytes": ref.size_bytes,
                },
            )
        )

    async def emit_error(self, message: str, *, code: str | None = None) -> None:
        """Emit a structured error event; it does not raise or fail the job."""
        await self.emit_event(AgentEvent(kind="error", payload={"message": message, "code": code}))

    async def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (sync or async) once per job and return its
        result: on a later delivery of the job (its worker died, a retry) a
        step that finished returns its stored result without running. Names
        are unique within a job; a step that raised runs again next time. Code
        outside steps runs again on every delivery: put side effects and
        expensive calls in steps (:mod:`worker.interface.steps`)."""
        return await self._steps().run(name, fn, *args, **kwargs)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (up to years). On a worker the wait is durable and frees
        the worker: the attempt ends, and the job runs again from the top when
        the time comes, its finished steps returning their stored results
        (:mod:`worker.interface.suspend`). Elsewhere it is ``asyncio.sleep``."""
        await asyncio.sleep(seconds)

    async def ask(
        self, question: str, *, schema: type[BaseModel] | None = None, timeout: float | None = None
    ) -> Any:
        """Ask the job's caller a question and return the answer (an instance of
        ``schema``, else the JSON value). On a worker the job waits
        ``input_required`` holding no slot until ``client.respond`` answers,
        then runs again from the top and this call returns the answer; past
        ``timeout`` seconds it raises ``InputTimeout``
        (:mod:`worker.interface.suspend`). A context without a runtime that
        answers cannot ask."""
        raise NotImplementedError("this context cannot ask: use LocalRunContext(answers=...)")

    async def spend(self, amount: float, unit: str = "usd") -> float:
        """Record spending ``amount`` of ``unit`` ("usd", "tokens", ...) against
        this job and return what is left under the nearest ceiling (``inf``
        when none applies). A spend that would pass the job's budget, an
        ancestor's in its call tree, or its owner's quota raises
        ``BudgetExceeded`` and records nothing; with ``@skill(on_budget="ask")``
        the owner is asked to raise it instead (:mod:`worker.interface.budgets`)."""
        return await spend(self._ledger(), amount, unit, self._on_budget, self._budget_ask)

    _on_budget: OnBudget = "fail"

    def _ledger(self) -> Ledger:
        """Where this context's spending is kept; in memory unless a runtime says."""
        ledger: Ledger | None = self.__dict__.get("_local_ledger")
        if ledger is None:
            ledger = self.__dict__["_local_ledger"] = LocalLedger(self.task_id, None)
        return ledger

    async def _budget_ask(self, number: int, question: str) -> RaiseBudget:
        answer: RaiseBudget = await self.ask(question, schema=RaiseBudget)
        return answer

    def _steps(self) -> StepRunner:
        """Where this context keeps finished steps; in memory unless a runtime says."""
        runner: StepRunner | None = self.__dict__.get("_step_runner")
        if runner is None:
            kept: dict[str, StepDone] = self.__dict__.setdefault("_kept_steps", {})

            async def load(name: str) -> StepDone | None:
                return kept.get(name)

            async def save(name: str, done: StepDone) -> None:
                kept[name] = done

            async def emit(kind: str, payload: dict[str, Any]) -> None:
                await self.emit_event(AgentEvent(kind, payload))

            runner = self.__dict__["_step_runner"] = StepRunner(load, save, emit)
        return runner

    def require_scopes(self, required: Sequence[str]) -> None:
        """Raise :class:`MissingScopes` if ``self.auth`` lacks any required scope.

        Auth models without a ``scopes`` attribute (such as ``NoAuth``) hold
        no scopes.
        """
        if not required:
            return
        MissingScopes.check(required, set(getattr(self.auth, "scopes", ()) or ()))


class LocalRunContext(RunContext[AuthT]):
    """In-memory context for local development and unit tests.

    Events go to a list, artifacts to a dict, secrets come from a mapping and
    cancellation from an :class:`asyncio.Event` set by :meth:`cancel`.
    """

    def __init__(
        self,
        *,
        auth: AuthT,
        task_id: str = "local-task",
        secrets: dict[str, str] | None = None,
        workspace: WorkspaceClient | None = None,
        sandbox: SandboxClient | None = None,
        a2a: A2AClient | None = None,
        discover: DiscoveryClient | None = None,
        steps: dict[str, Any] | None = None,
        answers: dict[str, Any] | Callable[[str], Any] | None = None,
        budget: dict[str, float] | None = None,
        on_budget: OnBudget = "fail",
    ) -> None:
        """``steps``: results of steps an earlier delivery finished (name -> result),
        to test how a handler resumes; :attr:`steps` holds every finished one.
        ``answers``: what ``ctx.ask`` gets, by question or from a callback; every
        question asked is kept in :attr:`asked`. ``budget``: ceilings ``ctx.spend``
        is held to (``{"usd": 1.0}``), and :attr:`spent` what it recorded;
        ``on_budget="ask"`` asks (through ``answers``) to raise a ceiling it
        would cross, as ``@skill(on_budget="ask")`` does on a worker."""
        self.task_id = task_id
        self.auth = auth
        self._secrets: dict[str, str] = dict(secrets or {})
        self._workspace = workspace
        self._sandbox = sandbox
        self._a2a = a2a
        self._discover = discover
        self._cancel = asyncio.Event()
        self.events: list[AgentEvent] = []
        self.artifacts: dict[str, bytes] = {}
        self._refs: dict[str, ArtifactRef] = {}
        self.steps: dict[str, Any] = dict(steps or {})
        self.slept: list[float] = []
        self._answers = answers
        self.asked: list[str] = []
        self.ledger = LocalLedger(task_id, budget)
        self._on_budget = on_budget

    @property
    def workspace(self) -> WorkspaceClient:
        if self._workspace is None:
            raise PermissionError(
                "no workspace bound to this context; the skill did not declare "
                "workspace access or the runtime did not provision one"
            )
        return self._workspace

    @property
    def sandbox(self) -> SandboxClient:
        if self._sandbox is None:
            raise SandboxUnavailable(
                "no sandbox client attached to this context; the runtime must provision one"
            )
        return self._sandbox

    @property
    def discover(self) -> DiscoveryClient:
        if self._discover is None:
            raise PermissionError("no discovery client attached; the runtime must provision one")
        return self._discover

    def _a2a_client(self) -> A2AClient:
        if self._a2a is None:
            raise PermissionError(
                "no A2A client attached; the runtime must provision one before ctx.call(...)"
            )
        return self._a2a

    async def emit_event(self, event: AgentEvent) -> None:
        self.events.append(event)

    async def write_artifact(self, name: str, data: bytes, mime_type: str) -> ArtifactRef:
        self.artifacts[name] = data
        ref = ArtifactRef(
            name=name,
            uri=f"memory://{self.task_id}/{name}",
            mime_type=mime_type,
            size_bytes=len(data),
        )
        self._refs[name] = ref
        return ref

    async def sleep(self, seconds: float) -> None:
        """Recorded in :attr:`slept` and returned at once: a test need not wait."""
        self.slept.append(seconds)

    async def ask(
        self, question: str, *, schema: type[BaseModel] | None = None, timeout: float | None = None
    ) -> Any:
        self.asked.append(question)
        answers = self._answers
        if answers is None:
            raise LookupError(f"no answer for {question!r}: pass LocalRunContext(answers=...)")
        if callable(answers):
            value = answers(question)
        elif question in answers:
            value = answers[question]
        else:
            raise LookupError(f"no answer for {question!r} in the answers given")
        return schema.model_validate(value) if schema is not None else value

    def _steps(self) -> StepRunner:
        runner: StepRunner | None = self.__dict__.get("_step_runner")
        if runner is None:

            async def load(name: str) -> StepDone | None:
                if name not in self.steps:
                    return None
                return StepDone(json.dumps(self.steps[name]), 0.0, 0.0)

            async def save(name: str, done: StepDone) -> None:
                self.steps[name] = json.loads(done.result)

            async def emit(kind: str, payload: dict[str, Any]) -> None:
                await self.emit_event(AgentEvent(kind, payload))

            runner = self.__dict__["_step_runner"] = StepRunner(load, save, emit)
        return runner

    @property
    def spent(self) -> dict[str, float]:
        """What ``ctx.spend`` recorded, per unit."""
        return dict(self.ledger.spent)

    def _ledger(self) -> Ledger:
        return self.ledger

    def artifact_refs(self) -> list[ArtifactRef]:
        """References to every artifact written, in the order they were first written."""
        return list(self._refs.values())

    async def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise CancelledByCaller(self.task_id)

    def cancel(self) -> None:
        self._cancel.set()

    def secret(self, name: str) -> str:
        try:
            return self._secrets[name]
        except KeyError as exc:
            raise KeyError(f"unknown secret: {name!r}") from exc
