"""Errors about a job's deliveries rather than its input: what the worker
records when a run could not end normally. Re-exported by
:mod:`worker.core.errors`, whose table maps each to its codes."""

from __future__ import annotations

from .error_base import SkillqError


class HandlerAborted(SkillqError):
    """A handler raised what would stop a worker (``SystemExit``, ``KeyboardInterrupt``)
    or an ``asyncio.CancelledError`` that no cancel of this job asked for."""

    def __init__(self, raised: BaseException, why: str) -> None:
        self.raised_type = type(raised).__name__
        detail = str(raised)
        shown = f"{self.raised_type}({detail})" if detail else self.raised_type
        super().__init__(f"the handler raised {shown}: {why}")


class DeliveryLimitExceeded(SkillqError):
    """A job was delivered more often than ``SKILLQ_MAX_DELIVERIES`` allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"gave up after {limit} deliveries: each attempt ended without an outcome because "
            "its worker process died (killed, out of memory, crashed or exited); "
            "see the worker logs, or raise SKILLQ_MAX_DELIVERIES"
        )


class CallerEnded(SkillqError):
    """A child job (``ctx.call``) left unfinished when the job that called it ended."""

    def __init__(self) -> None:
        super().__init__(
            "the job that called this one ended, or its worker process died, before this "
            "child finished (it ran inline in that process); the caller's record says why"
        )


class MessageRefused(SkillqError):
    """A queue item that cannot be run safely; it was moved to the dead-letter list."""

    def __init__(self, reason: str, dead_letter_key: str) -> None:
        self.reason = reason
        super().__init__(f"message refused: {reason} (kept in {dead_letter_key})")


class DeliverySuperseded(SkillqError):
    """This run's delivery lease lapsed and a later delivery took the job over.

    Raised inside the stale run (its events, artifact records and outcome are
    refused), so a worker that froze or was cut off never also finishes a
    job another worker now runs.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"job {job_id}: this run's delivery lease lapsed (its worker was frozen, cut off "
            "from Redis or too busy to renew it within SKILLQ_LEASE) and another delivery "
            "took the job over; this run's writes are refused"
        )
        self.args = (job_id,)


class NotReplicated(SkillqError):
    """A write Redis took did not reach ``SKILLQ_REDIS_MIN_REPLICAS`` replicas in
    time: a failover now could lose it, so skillq does not count it done."""

    def __init__(self, what: str, wanted: int, reached: int, timeout: float) -> None:
        self.wanted, self.reached = wanted, reached
        super().__init__(
            f"{what} reached {reached} of the {wanted} Redis replica(s) "
            f"SKILLQ_REDIS_MIN_REPLICAS asks for within {timeout:g} s, so it was undone: "
            "check the replicas (skillq health), then try again"
        )
