"""Every error skillq raises, and how each one surfaces on every transport.

One base (:class:`SkillqError`) with subclasses that carry fields, and one
table (:data:`ERROR_TABLE`) mapping each error to the job error code stored
in the job record, the CLI exit code and the HTTP status. Handlers' own
exceptions that are not listed fall back to :data:`DEFAULT_SPEC`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .context import CancelledByCaller, MissingScopes


class SkillqError(Exception):
    """Base of all skillq errors; ``str(err)`` is a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(SkillqError):
    """A setting is missing or malformed."""


class UnknownSkill(SkillqError):
    def __init__(self, skill: str, known: Sequence[str] = ()) -> None:
        self.skill = skill
        self.known = tuple(known)
        hint = f"; known skills: {', '.join(sorted(self.known))}" if self.known else ""
        super().__init__(f"unknown skill {skill!r}{hint}")


class InvalidArgs(SkillqError):
    """Args (or auth) do not fit the skill: not JSON, too large, or off-schema."""

    def __init__(self, skill: str, detail: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        self.skill = skill
        self.detail = detail
        self.errors = list(errors)
        super().__init__(f"invalid args for skill {skill!r}: {detail}")


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

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InvalidArtifactName(SkillqError, ValueError):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid artifact name {name[:80]!r}: {reason}")


class ArtifactNotFound(SkillqError):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"artifact not found: {uri}")


class ArtifactStoreUnavailable(SkillqError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"artifact store unavailable: {detail}")


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
    def __init__(self, job_id: str, error_type: str, message: str) -> None:
        self.job_id = job_id
        self.error_type = error_type
        self.error_message = message
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        # Celery rebuilds a stored exception as cls(*args) on the caller's side.
        self.args = (job_id, error_type, message)


class JobCancelled(SkillqError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


@dataclass(frozen=True)
class ErrorSpec:
    """How one error surfaces: job error code, CLI exit code, HTTP status."""

    code: str
    exit_code: int
    http_status: int


EXIT_OK = 0

DEFAULT_SPEC = ErrorSpec("handler_error", 1, 500)

ERROR_TABLE: dict[type[BaseException], ErrorSpec] = {
    SkillqError: ErrorSpec("internal", 1, 500),
    ConfigurationError: ErrorSpec("configuration", 2, 500),
    UnknownSkill: ErrorSpec("unknown_skill", 2, 404),
    InvalidArgs: ErrorSpec("invalid_args", 2, 422),
    InvalidAuth: ErrorSpec("invalid_auth", 2, 401),
    MissingScopes: ErrorSpec("missing_scopes", 2, 403),
    SecretNotFound: ErrorSpec("secret_not_found", 1, 500),
    InvalidArtifactName: ErrorSpec("invalid_artifact_name", 1, 422),
    ArtifactNotFound: ErrorSpec("artifact_not_found", 4, 404),
    ArtifactStoreUnavailable: ErrorSpec("artifact_store_unavailable", 1, 503),
    InvalidEvent: ErrorSpec("invalid_event", 1, 500),
    InvalidResult: ErrorSpec("invalid_result", 1, 500),
    JobTimeout: ErrorSpec("timeout", 1, 504),
    JobFailed: ErrorSpec("failed", 1, 500),
    JobCancelled: ErrorSpec("cancelled", 3, 409),
    CancelledByCaller: ErrorSpec("cancelled", 3, 409),
    JobNotFound: ErrorSpec("not_found", 4, 404),
    TimeoutError: ErrorSpec("wait_timeout", 5, 504),
    RedisConnectionError: ErrorSpec("redis_unavailable", 6, 503),
    RedisTimeoutError: ErrorSpec("redis_unavailable", 6, 503),
}


def spec_for(exc: BaseException | type[BaseException]) -> ErrorSpec:
    """The most specific table entry along the exception's MRO."""
    cls = exc if isinstance(exc, type) else type(exc)
    for base in cls.__mro__:
        spec = ERROR_TABLE.get(base)
        if spec is not None:
            return spec
    return DEFAULT_SPEC
