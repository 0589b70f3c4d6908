"""How many event streams one caller may hold open on a server process, and
what a stream may take before it is counted: nothing.

Every stream is cheap (the process's streams share one pub/sub connection,
see :mod:`worker.client.fanout`), but not free: a caller who opens
thousands could still take the process's memory and event loop from
everyone else. Each caller gets ``SKILLQ_SERVER_MAX_STREAMS_PER_CALLER``
at a time per process (SSE on the job API and A2A streams together); the
next one is refused with 429 until one ends.

:func:`open_stream` counts a stream before it reads anything, and reads on
the fan-out's own Redis pool: a refused stream costs no Redis command, and
the streams that are served never take the connections of other requests.
Before, each asked-for stream read the job's record on the requests' pool
first, so 300 of one caller's took all 100 of its connections and other
callers were answered 503.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from ..client.asynchronous import AsyncSkillClient
from ..core.errors import JobNotFound, TooManyStreams
from ..store.job_status import JobStatus
from .principals import Principal


@dataclass
class StreamLease:
    """One open stream of a caller; :meth:`release` is safe to call more than once."""

    limits: StreamLimits
    subject: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limits.give_back(self.subject)


@dataclass
class StreamLimits:
    per_caller: int
    open: Counter[str] = field(default_factory=Counter)

    def check(self, subject: str) -> None:
        """Refuse now what :meth:`take` would refuse (before submitting a job to follow)."""
        if self.open[subject] >= self.per_caller:
            raise TooManyStreams(self.per_caller)

    def take(self, subject: str) -> StreamLease:
        self.check(subject)
        self.open[subject] += 1
        return StreamLease(self, subject)

    def give_back(self, subject: str) -> None:
        self.open[subject] -= 1
        if self.open[subject] <= 0:
            del self.open[subject]


async def open_stream(
    limits: StreamLimits, client: AsyncSkillClient, caller: Principal, job_id: str
) -> tuple[StreamLease, JobStatus]:
    """The caller's place for one more stream (:class:`TooManyStreams` past the cap,
    before anything is read), then the job if the caller may see it
    (:class:`JobNotFound` otherwise, the place given back)."""
    lease = limits.take(caller.subject)
    try:
        redis = client.redis if client.fanout is None else client.fanout.redis
        raw = cast(dict[str, str], await redis.hgetall(client.keys.job(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        status = JobStatus.from_hash(job_id, raw)
        if not caller.may_see(status.owner):
            raise JobNotFound(job_id)
    except BaseException:
        lease.release()
        raise
    return lease, status
