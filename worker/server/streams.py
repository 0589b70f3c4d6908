"""How many event streams one caller may hold open on a server process.

Every stream is cheap (the process's streams share one pub/sub connection,
see :mod:`worker.client.fanout`), but not free: a caller who opens
thousands could still take the process's memory and event loop from
everyone else. Each caller gets ``SKILLQ_SERVER_MAX_STREAMS_PER_CALLER``
at a time per process (SSE on the job API and A2A streams together); the
next one is refused with 429 until one ends.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..core.errors import TooManyStreams


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
