"""Jobs read as A2A tasks: one record read per task, with what the job
service's :class:`JobStatus` leaves out, and the indexes a page is read from.

A task's ``contextId`` and its message history are in the job's record but
not in :class:`JobStatus` (the HTTP job API answers that model, which stays as
it is), so the record is read here once and both are taken from it. A page is
one range of one sorted set: the caller's index, the caller's index of one
context (``SUBMIT`` keeps both), or every job for an admin; ``totalSize`` is
one ``ZCOUNT`` of that index. Nothing here scans.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from a2a.types.a2a_pb2 import Message, Part, Role
from redis.asyncio import Redis

from ..store.job_status import ANSWER_FIELD, ASK_FIELD, JobStatus
from ..store.keys import Keys
from .a2a_convert import data_part


@dataclass(frozen=True)
class Record:
    """A job's record: its status, and the raw fields for what that leaves out."""

    job: JobStatus
    raw: Mapping[str, str]

    @property
    def context(self) -> str:
        """The A2A context: the one the task was sent in, else its own id (a job
        the job API made, or one made before contexts were kept)."""
        return self.raw.get("context") or self.job.id

    def history(self) -> list[Message]:
        """The messages the record keeps, oldest first: the args the task was
        started with, then each question the job asked and its answer."""
        job_id = self.job.id
        found = [_message(f"{job_id}:args", Role.ROLE_USER, job_id, data=self.job.args or {})]
        numbers = sorted(
            int(key[len(ASK_FIELD) :])
            for key in self.raw
            if key.startswith(ASK_FIELD) and key[len(ASK_FIELD) :].isdigit()
        )
        for number in numbers:
            asked = json.loads(self.raw[f"{ASK_FIELD}{number}"])
            question = str(asked.get("question", "")) if isinstance(asked, dict) else ""
            found.append(_message(f"{job_id}:ask:{number}", Role.ROLE_AGENT, job_id, question))
            answer = self.raw.get(f"{ANSWER_FIELD}{number}")
            if answer is not None:
                found.append(
                    _message(
                        f"{job_id}:answer:{number}", Role.ROLE_USER, job_id, data=json.loads(answer)
                    )
                )
        for message in found:
            message.context_id = self.context
        return found


def _message(
    message_id: str, role: Role, task_id: str, text: str = "", data: Any = None
) -> Message:
    part = Part(text=text) if data is None else data_part(data)
    return Message(message_id=message_id, role=role, task_id=task_id, parts=[part])


def status_time(job: JobStatus) -> float:
    """When the task's status last changed, as its status timestamp says."""
    return job.finished_at or job.started_at or job.created_at or 0.0


class TaskRecords:
    """Reads records and pages of them from Redis."""

    def __init__(self, redis: Redis, keys: Keys, retention: float) -> None:
        self.redis = redis
        self.keys = keys
        self.retention = retention

    async def read(self, job_id: str) -> Record | None:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        return Record(JobStatus.from_hash(job_id, raw), raw) if raw else None

    async def page(
        self, index: str, size: int, before: float | None
    ) -> tuple[list[Record], float | None]:
        """Up to ``size`` records from ``index``, newest first, submitted before
        ``before``; and the score to go on from (None: this was the last page)."""
        newest = "+inf" if before is None else f"({before!r}"
        entries = cast(
            list[tuple[str, float]],
            await self.redis.zrevrangebyscore(
                index, newest, "-inf", start=0, num=size, withscores=True
            ),
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in entries:
                pipe.hgetall(self.keys.job(job_id))
            raws = cast(list[dict[str, str]], await pipe.execute())
        records = [
            Record(JobStatus.from_hash(job_id, raw), raw)
            for (job_id, _), raw in zip(entries, raws, strict=True)
            if raw  # expired: the index is trimmed when jobs are submitted
        ]
        last = entries[-1][1] if len(entries) == size else None
        oldest = repr(time.time() - self.retention)
        if last is not None and not await self.redis.zcount(index, oldest, f"({last!r}"):
            last = None  # nothing older: this page is the last
        return records, last

    async def total(self, index: str) -> int:
        """The index's entries within the record retention, as ``SUBMIT`` trims it."""
        oldest = time.time() - self.retention
        return int(await self.redis.zcount(index, repr(oldest), "+inf"))
