"""A job as callers read it: its record decoded into :class:`JobStatus`, and the
:class:`JobError` a failure is stored as (redacted, with a bounded traceback)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import (
    InvalidArgs,
    InvalidAuth,
    MissingScopes,
    UnknownSkill,
    spec_for,
)
from ..interface.context import ArtifactRef

JobState = Literal[
    "queued", "running", "retrying", "input_required", "succeeded", "failed", "cancelled"
]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ARTIFACT_FIELD = "artifact:"
ASK_FIELD, ANSWER_FIELD = "ask:", "answer:"
STEP_FIELD = "step:"


TRACEBACK_MAX_CHARS = 8000
MESSAGE_MAX_CHARS = 16_000
# Errors in what the caller sent: the traceback would show skillq, not the cause.
CALLER_ERRORS = (InvalidArgs, InvalidAuth, MissingScopes, UnknownSkill)


class JobError(BaseModel):
    """Why a job failed: the exception type, a message, a stable code and, for
    errors raised while the handler ran, its (redacted, capped) traceback."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    code: str
    traceback: str | None = None


def job_error(
    exc: BaseException,
    redact: Callable[[str], str] | None = None,
    *,
    with_traceback: bool = True,
) -> JobError:
    """The one way an exception becomes a job's error, wherever the job failed.

    ``redact`` removes secrets from the message and traceback; the code comes
    from the error table (:data:`worker.errors.ERROR_TABLE`).
    """
    clean = redact or (lambda text: text)
    message = clean(str(exc) or type(exc).__name__)
    if len(message) > MESSAGE_MAX_CHARS:
        message = message[:MESSAGE_MAX_CHARS] + "...(cut)"
    trace = None
    if with_traceback and exc.__traceback__ is not None and not isinstance(exc, CALLER_ERRORS):
        text = clean("".join(traceback.format_exception(exc)))
        if len(text) > TRACEBACK_MAX_CHARS:
            text = "...(earlier lines cut)\n" + text[-TRACEBACK_MAX_CHARS:]
        trace = text
    code = spec_for(exc).code
    return JobError(type=type(exc).__name__, message=message, code=code, traceback=trace)


class ArtifactInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    uri: str
    mime_type: str
    size_bytes: int
    created_at: float = 0.0

    def ref(self) -> ArtifactRef:
        return ArtifactRef(self.name, self.uri, self.mime_type, self.size_bytes)


class StepInfo(BaseModel):
    """A finished step of a job (``ctx.step``), as its record keeps it."""

    model_config = ConfigDict(frozen=True)

    name: str = ""
    state: str = "done"
    started_at: float | None = None
    ended_at: float | None = None


class Question(BaseModel):
    """What a job waiting ``input_required`` asks (``ctx.ask``); ``schema`` is the
    answer's JSON schema ({} for any JSON)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    number: int  # the job's asks are numbered 1, 2, ... in the order it makes them
    question: str
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    asked_at: float | None = None
    expires_at: float | None = None


def by_unit(raw: Mapping[str, str], prefix: str) -> dict[str, float]:
    found = {key[len(prefix) :]: value for key, value in raw.items() if key.startswith(prefix)}
    return {unit: float(value) for unit, value in found.items()}


def open_question(raw: Mapping[str, str]) -> Question | None:
    """The question a waiting job has not had answered (its latest)."""
    if raw.get("state") != "input_required":
        return None
    numbers = [
        int(key[len(ASK_FIELD) :])
        for key in raw
        if key.startswith(ASK_FIELD) and key[len(ASK_FIELD) :].isdigit()
    ]
    waiting = [n for n in numbers if f"{ANSWER_FIELD}{n}" not in raw]
    if not waiting:
        return None
    number = max(waiting)
    return Question.model_validate({**json.loads(raw[f"{ASK_FIELD}{number}"]), "number": number})


class JobStatus(BaseModel):
    """A job as a poller sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    skill: str | None = None
    queue: str | None = None
    state: JobState
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    attempts: int = 0
    progress: str | None = None
    notice: str | None = None
    result: Any = None
    error: JobError | None = None
    artifacts: list[ArtifactInfo] = []
    last_seq: int = 0
    parent: str | None = None  # the job whose ctx.call started this one
    children: list[str] = []  # jobs this one started with ctx.call, in start order
    owner: str | None = None  # who submitted it through the HTTP server
    retries: int = 0  # retries scheduled (the skill's ``retries``); attempt = retries + 1
    next_run_at: float | None = None  # when a ``retrying`` job runs again
    eta: float | None = None  # when a delayed job may start
    priority: int = 0  # 0-9, 9 the most urgent (as submitted through skillq)
    errors: list[JobError] = []  # each earlier attempt's error, in order
    steps: list[StepInfo] = []  # finished ``ctx.step`` steps, in the order they ran
    question: Question | None = None  # while ``input_required``: what it asks
    schedule: str | None = None  # the schedule that made it
    scheduled_for: float | None = None  # the due time it was made for
    # What it was called with, as submitted through skillq (None: a plain
    # Celery producer queued it, and only its message held them).
    args: dict[str, Any] | None = None
    retry_of: str | None = None  # the job this one retries
    retried_by: list[str] = []  # jobs made to retry this one, oldest first
    # ctx.spend: what it and the jobs it called spent, and its ceilings, per unit.
    spend: dict[str, float] = {}
    budget: dict[str, float] = {}

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_hash(cls, job_id: str, raw: Mapping[str, str]) -> JobStatus:
        artifacts = [
            ArtifactInfo.model_validate_json(value)
            for key, value in raw.items()
            if key.startswith(ARTIFACT_FIELD)
        ]
        artifacts.sort(key=lambda item: (item.created_at, item.name))
        steps = [
            StepInfo.model_validate_json(value).model_copy(update={"name": key[len(STEP_FIELD) :]})
            for key, value in raw.items()
            if key.startswith(STEP_FIELD)
        ]
        steps.sort(key=lambda item: (item.started_at or 0.0, item.name))

        def number(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value else None

        return cls(
            id=job_id,
            skill=raw.get("skill"),
            queue=raw.get("queue"),
            state=raw.get("state", "queued"),
            created_at=number("created_at"),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            worker=raw.get("worker"),
            attempts=int(raw.get("attempts", "0")),
            progress=raw.get("progress"),
            notice=raw.get("notice"),
            result=json.loads(raw["result"]) if "result" in raw else None,
            error=JobError.model_validate_json(raw["error"]) if "error" in raw else None,
            artifacts=artifacts,
            last_seq=int(raw.get("seq", "0")),
            parent=raw.get("parent") or None,
            children=[child for child in raw.get("children", "").split(",") if child],
            owner=raw.get("owner") or None,
            steps=steps,
            question=open_question(raw),
            schedule=raw.get("schedule") or None,
            scheduled_for=number("scheduled_for"),
            retries=int(raw.get("retries", "0")),
            next_run_at=number("next_run_at"),
            eta=number("eta"),
            priority=int(raw.get("priority") or 0),
            errors=[JobError.model_validate(item) for item in json.loads(raw.get("errors", "[]"))],
            args=json.loads(raw["args"]) if raw.get("args") else None,
            retry_of=raw.get("retry_of") or None,
            retried_by=[job for job in raw.get("retried_by", "").split(",") if job],
            spend=by_unit(raw, "spent:"),
            budget=by_unit(raw, "budget:"),
        )
