"""Acknowledgements that ride along: a finished job's message leaves Redis
with the worker's next take, not with a script call of its own.

Every job used to cost the worker's main process two script calls: the lease
when its message was taken (``lease_take.lua``) and the release when it was
acknowledged (``lease_release.lua``). An acknowledged tag now waits here; the
next take's call removes it before leasing the new delivery, so under load a
job costs one call. When nothing more is taken, the lease keeper's thread
sends what waits within ``ACK_WAIT``, and keeps retrying (every
``ACK_RETRY``) while Redis cannot be reached.

Nothing on the consumer's side ever waits for these removals: not the take
(which only carries what is due), not a channel closing on a lost connection
(what waits stays here for the next channel's takes or the keeper). Nothing
depends on the removal being immediate either: the job's outcome is stored
before its message is acknowledged and the prefetch slot frees at once. A
worker killed in between leaves an entry that comes back when its lease
lapses, to a ``START`` that finds the job done and runs nothing.
"""

from __future__ import annotations

import threading
import time

ACK_WAIT = 0.02  # seconds an acknowledgement waits for a take to ride on
ACK_RETRY = 1.0  # seconds between the keeper's sends while Redis is away
ACKS_PER_CALL = 256  # tags one script call removes, at most


class PendingAcks:
    """Acknowledged delivery tags whose removal has not reached Redis.

    One per worker process (its lease keeper's): a channel that lost its
    connection takes nothing more, and the channel after it carries its
    acknowledgements. Safe from any thread: Celery acknowledges on the
    consumer's loop in a prefork pool and on the pool's threads otherwise.
    """

    def __init__(self) -> None:
        self._tags: list[str] = []
        self._since: float | None = None  # when the oldest waiting tag came
        self._lock = threading.Lock()
        self.arrived = threading.Event()  # set when the list stops being empty

    def add(self, tag: str) -> None:
        with self._lock:
            self._tags.append(tag)
            if self._since is None:
                self._since = time.monotonic()
                self.arrived.set()

    def due(self) -> list[str]:
        """The tags a call may carry; they stay here until :meth:`done`."""
        with self._lock:
            return self._tags[:ACKS_PER_CALL]

    def done(self, tags: list[str]) -> None:
        """``tags`` reached Redis (a take or the keeper carried them)."""
        if not tags:
            return
        with self._lock:
            if len(tags) == len(self._tags) and tags[-1] == self._tags[-1]:
                self._tags = []  # the common case: everything waiting went
            else:
                sent = set(tags)
                self._tags = [tag for tag in self._tags if tag not in sent]
            if not self._tags:
                self._since = None
                self.arrived.clear()

    def waited(self) -> float | None:
        """Seconds the oldest waiting tag has waited; None when none waits."""
        with self._lock:
            since = self._since
        return None if since is None else time.monotonic() - since

    def __len__(self) -> int:
        with self._lock:
            return len(self._tags)
