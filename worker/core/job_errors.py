"""Errors about what a job does over its life rather than its input: its steps,
its questions and its retries. Re-exported by :mod:`worker.core.errors`, whose
table maps each to its codes."""

from __future__ import annotations

from .error_base import SkillqError


class DuplicateStep(SkillqError, ValueError):
    """A job ran two steps of one name: a step's name is its identity across deliveries."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"step {name!r} already ran in this job: give each ctx.step its own name "
            "(e.g. f'fetch-{page}')"
        )


class InputTimeout(SkillqError):
    """Nobody answered a job's question (``ctx.ask``) before its timeout."""

    def __init__(self, job_id: str, question: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: no answer to {question[:200]!r} before its timeout")


class NotWaitingForInput(SkillqError):
    """An answer for a job that asks nothing now (never asked, answered, ended)."""

    def __init__(self, job_id: str, state: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} is not waiting for input (it is {state})")


class NotRetryable(SkillqError):
    """A retry of a job that has not ended, or whose arguments were not kept (a
    plain Celery producer queued it, so only its message ever held them)."""

    def __init__(self, job_id: str, why: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} cannot be retried: {why}")
