"""Errors about what a job does over its life rather than its input: its steps,
its questions and its retries. Re-exported by :mod:`worker.core.errors`, whose
table maps each to its codes."""

from __future__ import annotations

from datetime import UTC, datetime

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


class BudgetExceeded(SkillqError):
    """A ``ctx.spend`` that would take a job, or a job above it in its call tree,
    past its budget; nothing of it is recorded. ``job_id``: the job whose
    ceiling it would cross."""

    def __init__(self, job_id: str, unit: str, amount: float, spent: float, ceiling: float):
        self.job_id, self.unit = job_id, unit
        self.amount, self.spent, self.ceiling = amount, spent, ceiling
        super().__init__(
            f"spending {amount:g} {unit} would pass the budget of job {job_id}: "
            f"{spent:g} of {ceiling:g} {unit} spent (raise it at submit with budget=, "
            "or in @skill(budget=...))"
        )


class QuotaExceeded(SkillqError):
    """An owner's jobs spent their quota for the period; it renews at ``renews_at``."""

    def __init__(self, owner: str, unit: str, limit: float, renews_at: float) -> None:
        self.owner, self.unit, self.limit, self.renews_at = owner, unit, limit, renews_at
        when = datetime.fromtimestamp(renews_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(
            f"{owner!r} has spent its quota of {limit:g} {unit} for this period; "
            f"it renews at {when}"
        )
