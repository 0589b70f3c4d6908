"""Every error skillq raises, and how each one surfaces on every transport.

One base (:class:`SkillqError`) with subclasses that carry fields, and one
table (:data:`ERROR_TABLE`) mapping each error to the job error code stored
in the job record, the CLI exit code, the HTTP status and the A2A (JSON-RPC)
error code. Handlers' own exceptions that are not listed fall back to
:data:`DEFAULT_SPEC`. Where the seed's interface names a standard base, the
error keeps it too (in brackets), so ``except PermissionError`` still works::

    SkillqError
    +-- CancelledByCaller [RuntimeError]
    +-- MissingScopes [PermissionError]
    +-- SandboxUnavailable [RuntimeError]
    +-- ConfigurationError
    |   +-- RedisMisconfigured
    +-- UnknownSkill
    +-- InvalidArgs
    |   +-- InvalidSubmission
    +-- InvalidAuth
    +-- SecretNotFound [KeyError]
    +-- InvalidArtifactName [ValueError]
    |   +-- InvalidWorkspacePath
    +-- InvalidGrant
    +-- WorkspaceDenied [PermissionError]
    +-- ArtifactNotFound
    +-- ArtifactStoreUnavailable
    |   +-- ArtifactStoreRefused
    +-- InvalidEvent [ValueError]
    +-- InvalidResult
    +-- DuplicateStep [ValueError]
    +-- JobTimeout
    +-- InputTimeout
    +-- NotWaitingForInput
    +-- NotRetryable
    +-- BudgetExceeded
    +-- QuotaExceeded
    +-- JobNotFound
    +-- ScheduleNotFound
    +-- JobFailed
    +-- JobCancelled
    +-- JobExpired
    +-- HandlerAborted
    +-- DeliveryLimitExceeded
    +-- NotReplicated
    +-- DeliverySuperseded
    +-- CallerEnded
    +-- MessageRefused
    +-- InvalidRequest
    |   +-- RequestTooLarge
    +-- TooManyStreams
    +-- TooManySchedules
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .delivery_errors import CallerEnded as CallerEnded
from .delivery_errors import DeliveryLimitExceeded as DeliveryLimitExceeded
from .delivery_errors import DeliverySuperseded as DeliverySuperseded
from .delivery_errors import HandlerAborted as HandlerAborted
from .delivery_errors import MessageRefused as MessageRefused
from .delivery_errors import NotReplicated as NotReplicated
from .error_base import SkillqError as SkillqError
from .error_spec import A2A_INTERNAL as A2A_INTERNAL
from .error_spec import A2A_INVALID_PARAMS as A2A_INVALID_PARAMS
from .error_spec import A2A_INVALID_REQUEST as A2A_INVALID_REQUEST
from .error_spec import A2A_TASK_NOT_CANCELABLE as A2A_TASK_NOT_CANCELABLE
from .error_spec import A2A_TASK_NOT_FOUND as A2A_TASK_NOT_FOUND
from .error_spec import A2A_UNSUPPORTED_OPERATION as A2A_UNSUPPORTED_OPERATION
from .error_spec import DEFAULT_SPEC as DEFAULT_SPEC
from .error_spec import ErrorSpec as ErrorSpec
from .job_errors import BudgetExceeded as BudgetExceeded
from .job_errors import DuplicateStep as DuplicateStep
from .job_errors import InputTimeout as InputTimeout
from .job_errors import NotRetryable as NotRetryable
from .job_errors import NotWaitingForInput as NotWaitingForInput
from .job_errors import QuotaExceeded as QuotaExceeded


class CancelledByCaller(SkillqError, RuntimeError):
    """Raised by :meth:`RunContext.check_cancelled` once the caller cancelled."""

    def __init__(self, job_id: str = "") -> None:
        self.job_id = job_id
        super().__init__(
            f"job {job_id} was cancelled by its caller" if job_id else "cancelled by the caller"
        )
        self.args = (job_id,)  # Celery rebuilds a stored exception as cls(*args)


class MissingScopes(SkillqError, PermissionError):
    """Raised by :meth:`RunContext.require_scopes` when the caller lacks scopes."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(f"missing scopes: {sorted(self.missing)}")
        self.args = (list(self.missing),)

    @classmethod
    def check(cls, required: Sequence[str], held: Sequence[str] | set[str]) -> None:
        """Raise naming every scope of ``required`` not in ``held``."""
        missing = [scope for scope in required if scope not in held]
        if missing:
            raise cls(missing)


class SandboxUnavailable(SkillqError, RuntimeError):
    """The runtime attached no sandbox to this context.

    A distinct type so a skill can degrade gracefully (skip code execution)
    instead of treating the absence like any other failure.
    """


class ConfigurationError(SkillqError):
    """A setting is missing or malformed."""


class UnknownSkill(SkillqError):
    def __init__(self, skill: str, known: Sequence[str] = ()) -> None:
        self.skill = skill
        self.known = tuple(known)
        hint = (
            f"; known skills: {', '.join(sorted(self.known))}"
            if self.known
            else ": no worker has registered any skill yet; start one with `skillq worker` "
            "(SKILLQ_SKILLS names the modules it serves)"
        )
        super().__init__(f"unknown skill {skill!r}{hint}")


class InvalidArgs(SkillqError):
    """Args (or auth) do not fit the skill: not JSON, too large, or off-schema."""

    def __init__(self, skill: str, detail: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        self.skill = skill
        self.detail = detail
        self.errors = list(errors)
        super().__init__(f"invalid args for skill {skill!r}: {detail}")


class InvalidSubmission(InvalidArgs):
    """A submission's options cannot be used (a delay, priority, time limit, job id,
    queue or key); the args may be fine. Handled as :class:`InvalidArgs`."""

    def __init__(self, skill: str, detail: str) -> None:
        super().__init__(skill, detail)
        self.message = (
            f"cannot submit to skill {skill!r}: {detail}" if skill else (f"cannot submit: {detail}")
        )


class InvalidAuth(SkillqError):
    def __init__(self, skill: str, detail: str) -> None:
        self.skill = skill
        self.detail = detail
        super().__init__(f"invalid auth for skill {skill!r}: {detail}")


class SecretNotFound(SkillqError, KeyError):
    """A secret was not declared by the skill, or is not configured."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"secret {name!r} {reason}")


class InvalidArtifactName(SkillqError, ValueError):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid artifact name {name[:80]!r}: {reason}")


class InvalidWorkspacePath(InvalidArtifactName):
    """A workspace path that could mean something else to a store or a client."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.message = f"invalid workspace path {name[:80]!r}: {reason}"


class InvalidGrant(SkillqError):
    """A workspace grant that cannot be used: forged, expired, revoked, malformed,
    for another workspace, or given to a skill that does not declare workspace access."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"workspace grant refused: {reason}")

    @classmethod
    def without_access(cls, skill: str) -> InvalidGrant:
        return cls(
            f"skill {skill!r} does not declare workspace_access=True, so it cannot be given "
            "a workspace grant"
        )


class WorkspaceDenied(SkillqError, PermissionError):
    """A workspace read, write, list or delegation outside the grant's scopes."""


class ArtifactNotFound(SkillqError):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"artifact not found: {uri}")


class ArtifactStoreUnavailable(SkillqError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"artifact store unavailable: {detail}")


class ArtifactStoreRefused(ArtifactStoreUnavailable):
    """The artifact store answers but refuses skillq: wrong credentials, no such
    bucket, no permission. Not the handler's fault, and no retry will help."""

    def __init__(self, detail: str) -> None:
        SkillqError.__init__(
            self,
            f"artifact store refused: {detail}; check AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY (or the role), the bucket in SKILLQ_ARTIFACTS_URL and "
            "SKILLQ_S3_ENDPOINT_URL",
        )
        self.detail = detail


class InvalidEvent(SkillqError, ValueError):
    """An event payload is not JSON or exceeds the size limit."""


class InvalidResult(SkillqError):
    """A handler returned something that is not JSON or does not fit its model."""


class JobTimeout(SkillqError):
    def __init__(self, job_id: str, time_limit: float) -> None:
        self.job_id = job_id
        self.time_limit = time_limit
        super().__init__(f"job {job_id} exceeded its time limit of {time_limit:g} s")


class JobNotFound(SkillqError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job not found: {job_id}")


class JobFailed(SkillqError):
    """A job ended ``failed``; ``code`` is the job error code stored in its record."""

    def __init__(
        self, job_id: str, error_type: str, message: str, code: str = "handler_error"
    ) -> None:
        self.job_id = job_id
        self.error_type = error_type
        self.error_message = message
        self.code = code
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        # Celery rebuilds a stored exception as cls(*args) on the caller's side.
        self.args = (job_id, error_type, message, code)


class ScheduleNotFound(SkillqError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}")


class JobExpired(SkillqError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} expired before it ran")


class RedisMisconfigured(ConfigurationError):
    """Redis is set up to drop data that skillq keeps there (queues, records)."""


class InvalidRequest(SkillqError):
    """A request the server cannot read: a malformed header, parameter or body."""


class RequestTooLarge(InvalidRequest):
    """A request body over ``SKILLQ_SERVER_MAX_BODY``, refused before it is read whole."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the request body is over the {limit}-byte limit (SKILLQ_SERVER_MAX_BODY)"
        )


class TooManyStreams(SkillqError):
    """A caller holds as many event streams open as one caller may."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"you already hold {limit} open event streams on this server "
            "(SKILLQ_SERVER_MAX_STREAMS_PER_CALLER): close one, or wait for a job to end"
        )


class TooManySchedules(SkillqError):
    """An owner has as many schedules as one owner may: a new one is refused
    (replacing one of theirs is not)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"you already have {limit} schedules (SKILLQ_MAX_SCHEDULES_PER_OWNER): "
            "remove one, or replace one of yours by its name"
        )
        self.args = (limit,)


class JobCancelled(SkillqError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


ERROR_TABLE: dict[type[BaseException], ErrorSpec] = {
    SkillqError: ErrorSpec("internal", 1, 500),
    ConfigurationError: ErrorSpec("configuration", 2, 500),
    UnknownSkill: ErrorSpec("unknown_skill", 2, 404, A2A_UNSUPPORTED_OPERATION),
    InvalidArgs: ErrorSpec("invalid_args", 2, 422, A2A_INVALID_PARAMS),
    InvalidSubmission: ErrorSpec("invalid_args", 2, 422, A2A_INVALID_PARAMS),
    InvalidAuth: ErrorSpec("invalid_auth", 2, 401, A2A_INVALID_REQUEST),
    MissingScopes: ErrorSpec("missing_scopes", 2, 403, A2A_INVALID_REQUEST),
    SecretNotFound: ErrorSpec("secret_not_found", 1, 500),
    InvalidArtifactName: ErrorSpec("invalid_artifact_name", 1, 422, A2A_INVALID_PARAMS),
    InvalidWorkspacePath: ErrorSpec("invalid_workspace_path", 2, 422, A2A_INVALID_PARAMS),
    InvalidGrant: ErrorSpec("invalid_grant", 2, 403, A2A_INVALID_REQUEST),
    WorkspaceDenied: ErrorSpec("workspace_denied", 2, 403, A2A_INVALID_REQUEST),
    ArtifactNotFound: ErrorSpec("artifact_not_found", 4, 404, A2A_TASK_NOT_FOUND),
    ArtifactStoreUnavailable: ErrorSpec("artifact_store_unavailable", 1, 503),
    ArtifactStoreRefused: ErrorSpec("artifact_store_refused", 2, 503),
    InvalidEvent: ErrorSpec("invalid_event", 1, 500),
    SandboxUnavailable: ErrorSpec("sandbox_unavailable", 1, 500),
    InvalidResult: ErrorSpec("invalid_result", 1, 500),
    DuplicateStep: ErrorSpec("duplicate_step", 1, 500),
    JobTimeout: ErrorSpec("timeout", 1, 504),
    InputTimeout: ErrorSpec("input_timeout", 1, 504),
    NotWaitingForInput: ErrorSpec("not_waiting", 2, 409, A2A_UNSUPPORTED_OPERATION),
    NotRetryable: ErrorSpec("not_retryable", 2, 409, A2A_UNSUPPORTED_OPERATION),
    BudgetExceeded: ErrorSpec("budget_exceeded", 1, 402, A2A_INVALID_REQUEST),
    QuotaExceeded: ErrorSpec("quota_exceeded", 2, 429, A2A_INVALID_REQUEST),
    JobExpired: ErrorSpec("expired", 1, 410),
    HandlerAborted: ErrorSpec("handler_aborted", 1, 500),
    DeliveryLimitExceeded: ErrorSpec("delivery_limit", 1, 500),
    DeliverySuperseded: ErrorSpec("superseded", 1, 409),
    CallerEnded: ErrorSpec("caller_ended", 1, 500),
    MessageRefused: ErrorSpec("message_refused", 2, 422, A2A_INVALID_PARAMS),
    RedisMisconfigured: ErrorSpec("redis_misconfigured", 2, 500),
    NotReplicated: ErrorSpec("redis_unavailable", 6, 503),
    JobFailed: ErrorSpec("failed", 1, 500),
    InvalidRequest: ErrorSpec("invalid_request", 2, 400, A2A_INVALID_REQUEST),
    RequestTooLarge: ErrorSpec("too_large", 2, 413, A2A_INVALID_REQUEST),
    TooManyStreams: ErrorSpec("too_many_streams", 2, 429, A2A_INVALID_REQUEST),
    TooManySchedules: ErrorSpec("too_many_schedules", 2, 429, A2A_INVALID_REQUEST),
    JobCancelled: ErrorSpec("cancelled", 3, 409, A2A_TASK_NOT_CANCELABLE),
    CancelledByCaller: ErrorSpec("cancelled", 3, 409, A2A_TASK_NOT_CANCELABLE),
    JobNotFound: ErrorSpec("not_found", 4, 404, A2A_TASK_NOT_FOUND),
    ScheduleNotFound: ErrorSpec("not_found", 4, 404, A2A_TASK_NOT_FOUND),
    TimeoutError: ErrorSpec("wait_timeout", 5, 504),
    RedisConnectionError: ErrorSpec("redis_unavailable", 6, 503),
    RedisTimeoutError: ErrorSpec("redis_unavailable", 6, 503),
}


SPEC_BY_CODE: dict[str, ErrorSpec] = {}
for _spec in [DEFAULT_SPEC, *ERROR_TABLE.values()]:
    SPEC_BY_CODE.setdefault(_spec.code, _spec)


def spec_for(exc: BaseException | type[BaseException]) -> ErrorSpec:
    """The most specific table entry along the exception's MRO.

    A :class:`JobFailed` surfaces as the error stored in its job: a job that
    failed with ``invalid_args`` exits the CLI with invalid-args' code.
    """
    if isinstance(exc, JobFailed):
        return SPEC_BY_CODE.get(exc.code, DEFAULT_SPEC)
    cls = exc if isinstance(exc, type) else type(exc)
    for base in cls.__mro__:
        spec = ERROR_TABLE.get(base)
        if spec is not None:
            return spec
    return DEFAULT_SPEC
