"""Following a job: its events replayed from the stream and then live, and the
wait for its end, through whichever pub/sub follower the client uses (its own
subscription, or a server's shared :class:`~worker.client.fanout.Fanout`)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from redis.asyncio import Redis

from ..core.errors import JobNotFound
from ..store.job_status import TERMINAL_STATES, JobStatus
from ..store.keys import Keys
from .fanout import Follower
from .subscription import IDLE, RECONNECTED, Deadline, Subscription

Envelope = dict[str, Any]
CATCH_UP_CHUNK = 500


def gap_marker(job_id: str, last: int, next_seq: int) -> Envelope:
    """Stands for events ``last+1 .. next_seq-1`` that the stream no longer holds."""
    return {
        "job_id": job_id,
        "seq": next_seq - 1,
        "ts": time.time(),
        "kind": "gap",
        "payload": {
            "from_seq": last + 1,
            "to_seq": next_seq - 1,
            "reason": "no longer in the job's stream (trimmed to SKILLQ_STREAM_MAXLEN, or expired)",
        },
    }


def with_gap(job_id: str, last: int, envelope: Envelope) -> list[Envelope]:
    if envelope["seq"] > last + 1:
        return [gap_marker(job_id, last, envelope["seq"]), envelope]
    return [envelope]


def is_terminal(envelope: Envelope) -> bool:
    return envelope.get("kind") == "status" and (
        envelope.get("payload", {}).get("state") in TERMINAL_STATES
    )


class JobFollower:
    """Reads a job's stream and record, and waits on its channel."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        follow: Callable[[str, Deadline], Subscription | Follower],
        chunk: int = CATCH_UP_CHUNK,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self._follow = follow
        self._chunk = chunk

    async def status(self, job_id: str) -> JobStatus:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        return JobStatus.from_hash(job_id, raw)

    async def wait_finished(self, job_id: str, timeout: float | None) -> JobStatus:
        """Subscribe, then re-read the record, then wait for the terminal event."""
        deadline = Deadline(timeout)
        async with self._follow(job_id, deadline) as channel:
            status = await self.status(job_id)
            while not status.finished:
                kind, envelope = await channel.get(deadline.wait(f"job {job_id} to finish"))
                if kind == RECONNECTED or (envelope is not None and is_terminal(envelope)):
                    status = await self.status(job_id)
            return status

    async def events(
        self,
        job_id: str,
        *,
        after: int = 0,
        follow: bool = True,
        timeout: float | None = None,
    ) -> AsyncIterator[Envelope]:
        """See :meth:`AsyncSkillClient.events`: the subscription opens before the
        replay is read, so nothing can fall between the two."""
        deadline = Deadline(timeout)
        channel = self._follow(job_id, deadline)
        try:
            if follow:
                await channel.open()
            batch, finished = await self._catch_up(job_id, after)
            last = after
            while True:
                for envelope in batch:
                    if envelope["seq"] <= last:
                        continue
                    for item in with_gap(job_id, last, envelope):
                        yield item
                    last = envelope["seq"]
                    if is_terminal(envelope):
                        return
                if len(batch) >= self._chunk:  # more is waiting in the stream
                    batch, finished = await self._catch_up(job_id, last)
                    continue
                if finished or not follow:
                    return
                kind, incoming = await channel.get(deadline.wait(f"job {job_id}'s last event"))
                if kind == IDLE or (incoming is not None and incoming["seq"] <= last):
                    batch, finished = [], False
                elif incoming is not None and incoming["seq"] == last + 1:
                    batch, finished = [incoming], False
                else:  # a gap, or a possibly missed message: catch up from the stream
                    batch, finished = await self._catch_up(job_id, last)
        finally:
            await channel.close()

    async def _catch_up(self, job_id: str, last: int) -> tuple[list[Envelope], bool]:
        """Events after ``last`` from the stream, and whether the job has finished.

        Events the record counted but the stream no longer holds come back
        as one ``gap`` envelope.
        """
        batch = await self._read_stream(job_id, last)
        if batch:
            return batch, False
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        if not raw:
            # Before the first event: no such job. Later: its record is gone (it
            # expired, or Redis lost its data), so no event will ever come.
            raise JobNotFound(job_id)
        status = JobStatus.from_hash(job_id, raw)
        if status.last_seq > last:
            # Written between the two reads, or trimmed away: the stream says which.
            batch = await self._read_stream(job_id, last)
            if not batch:
                batch = [gap_marker(job_id, last, status.last_seq + 1)]
        return batch, status.finished

    async def _read_stream(self, job_id: str, after: int) -> list[Envelope]:
        """At most a chunk of events after ``after`` (:data:`CATCH_UP_CHUNK`, or the
        fan-out's buffer): a follower far behind reads on in chunks, never holding
        more than that, let alone the whole stream."""
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(
                self.keys.stream(job_id), f"0-{after + 1}", "+", count=self._chunk
            ),
        )
        return [json.loads(fields["e"]) for _, fields in entries]
