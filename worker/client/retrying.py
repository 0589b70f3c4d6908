"""Retrying a job by hand: ``client.retry(job_id)`` makes a new job of the same
skill with the same args, on the same queue at the same priority, linked both
ways (the new job's ``retry_of``, the old one's ``retried_by``), with the
budget its submit gave.

A new job rather than the old one run again: the old job's record, events and
error stay as they were, to compare with. It is submitted by whoever retries
(their auth, their ownership), so a retry never borrows the first caller's
identity; a grant, a time limit or a concurrency key the first submit carried
is not kept in the record and is not carried over. Mixed into both clients,
as the answer and schedule calls are.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..core.errors import NotRetryable
from ..store.job_status import JobStatus
from ..wire.submission import SubmitOptions


def retry_options(
    status: JobStatus,
    *,
    auth: dict[str, Any] | BaseModel | None = None,
    owner: str | None = None,
) -> SubmitOptions:
    """The submission that retries ``status``'s job, or why there can be none."""
    if not status.finished:
        raise NotRetryable(
            status.id, f"it is {status.state}; cancel it first, or wait for it to end"
        )
    if status.args is None or status.skill is None:
        raise NotRetryable(
            status.id,
            "its args were not kept (a plain Celery producer queued it, and only its "
            "message held them); submit it anew",
        )
    return SubmitOptions(
        status.skill,
        status.args,
        auth=auth,
        queue=status.queue,
        owner=owner,
        priority=status.priority or None,
        retry_of=status.id,
        budget=status.budget or None,
    )


class AsyncRetryMethods:
    """``retry`` on :class:`~worker.client.AsyncSkillClient`."""

    async def status(self, job_id: str) -> JobStatus:  # pragma: no cover - the client's
        raise NotImplementedError

    async def submit_options(self, options: SubmitOptions) -> str:  # pragma: no cover
        raise NotImplementedError

    async def retry(
        self,
        job_id: str,
        *,
        auth: dict[str, Any] | BaseModel | None = None,
        owner: str | None = None,
    ) -> str:
        """Submit a new job with the ended job's skill, args, queue and priority,
        as ``auth`` and ``owner``; its id. Raises ``NotRetryable`` for a job that
        has not ended or whose args were not kept, ``JobNotFound`` for none."""
        options = retry_options(await self.status(job_id), auth=auth, owner=owner)
        return await self.submit_options(options)


class RetryMethods:
    """The same on :class:`~worker.client.SkillClient`, blocking."""

    def status(self, job_id: str) -> JobStatus:  # pragma: no cover - the client's
        raise NotImplementedError

    def submit_options(self, options: SubmitOptions) -> str:  # pragma: no cover
        raise NotImplementedError

    def retry(
        self,
        job_id: str,
        *,
        auth: dict[str, Any] | BaseModel | None = None,
        owner: str | None = None,
    ) -> str:
        """See :meth:`AsyncRetryMethods.retry`."""
        return self.submit_options(retry_options(self.status(job_id), auth=auth, owner=owner))
