"""Job records (``<prefix>:job:<id>``) and the scripted steps that change them.

A record is a Redis hash: scalar fields, JSON-encoded ``result`` and
``error``, one ``artifact:<name>`` field per artifact (so a rerun overwrites
instead of duplicating) and the event ``seq`` counter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from . import scripts
from .context import ArtifactRef
from .keys import Keys
from .settings import Settings

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ARTIFACT_FIELD = "artifact:"


class JobError(BaseModel):
    """Why a job failed: the exception type, a message and a stable code."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    code: str


class ArtifactInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    uri: str
    mime_type: str
    size_bytes: int
    created_at: float = 0.0

    def ref(self) -> ArtifactRef:
        return ArtifactRef(self.name, self.uri, self.mime_type, self.size_bytes)


class JobStatus(BaseModel):
    """A job as a poller sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    skill: str | None = None
    queue: str | None = None
    state: JobState
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    attempts: int = 0
    progress: str | None = None
    result: Any = None
    error: JobError | None = None
    artifacts: list[ArtifactInfo] = []
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_hash(cls, job_id: str, raw: Mapping[str, str]) -> JobStatus:
        artifacts = [
            ArtifactInfo.model_validate_json(value)
            for key, value in raw.items()
            if key.startswith(ARTIFACT_FIELD)
        ]
        artifacts.sort(key=lambda item: (item.created_at, item.name))

        def number(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value else None

        return cls(
            id=job_id,
            skill=raw.get("skill"),
            queue=raw.get("queue"),
            state=raw.get("state", "queued"),
            created_at=number("created_at"),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            worker=raw.get("worker"),
            attempts=int(raw.get("attempts", "0")),
            progress=raw.get("progress"),
            result=json.loads(raw["result"]) if "result" in raw else None,
            error=JobError.model_validate_json(raw["error"]) if "error" in raw else None,
            artifacts=artifacts,
            last_seq=int(raw.get("seq", "0")),
        )


@dataclass(frozen=True)
class StartDecision:
    action: Literal["run", "cancelled", "done"]
    attempts: int
    state: str


def envelope_head(job_id: str) -> str:
    return '{"job_id":' + json.dumps(job_id) + ',"seq":'


def now_json() -> str:
    return repr(time.time())


def job_keys(keys: Keys, job_id: str) -> list[str]:
    """KEYS 1-3 shared by every job script (see ``scripts``)."""
    return [keys.job(job_id), keys.stream(job_id), keys.events(job_id)]


def job_argv(settings: Settings, job_id: str) -> list[str]:
    """ARGV 1-5 shared by every job script (see ``scripts``)."""
    return [
        str(settings.stream_maxlen),
        str(settings.job_retention),
        str(settings.job_retention),
        envelope_head(job_id),
        now_json(),
    ]


def cancel_call(
    keys: Keys, settings: Settings, job_id: str, *, force: bool
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for ``scripts.CANCEL``."""
    return (
        [*job_keys(keys, job_id), keys.cancel(job_id)],
        [
            *job_argv(settings, job_id),
            keys.cancel_channel,
            job_id,
            str(settings.cancel_ttl),
            "1" if force else "0",
        ],
    )


class JobStore:
    """What a running handler writes (events, artifacts), on the loop's async client."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._emit: AsyncScript = redis.register_script(scripts.EMIT)

    async def emit(
        self, job_id: str, first: int, events: Sequence[tuple[str, str, str, str]]
    ) -> int:
        """Write pre-encoded ``(ts, kind json, payload json, progress)`` events.

        ``first`` is the delivery's running number of ``events[0]``.
        """
        flat = [part for event in events for part in event]
        seq = await self._emit(
            keys=job_keys(self.keys, job_id),
            args=[*job_argv(self.settings, job_id), str(len(events)), str(first), *flat],
        )
        return int(seq)

    async def record_artifact(self, job_id: str, info: ArtifactInfo) -> None:
        key = self.keys.job(job_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, ARTIFACT_FIELD + info.name, info.model_dump_json())
            pipe.expire(key, self.settings.job_retention)
            await pipe.execute()


class JobRecords:
    """The start and end of a job, on a synchronous client.

    They run in the pool's own thread (or the worker's main process), so the
    two round trips every job pays skip the event loop hand-off and the
    asyncio client's overhead.
    """

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self._start = client.register_script(scripts.START)
        self._finish = client.register_script(scripts.FINISH)

    def start(self, job_id: str, skill: str, worker: str, queue: str) -> StartDecision:
        delivery = uuid.uuid4().hex
        action, attempts, state = self._start(
            keys=[*job_keys(self.keys, job_id), self.keys.cancel(job_id)],
            args=[*job_argv(self.settings, job_id), skill, worker, queue, delivery],
        )
        return StartDecision(_text(action), int(attempts), _text(state))  # type: ignore[arg-type]

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        worker: str,
        result_json: str = "",
        error: JobError | None = None,
        celery_meta: tuple[str, str] | None = None,
    ) -> str:
        """Finalise the record; ``celery_meta`` (key, JSON) also stores Celery's result."""
        meta_key, meta = celery_meta or ("", "")
        final = self._finish(
            keys=job_keys(self.keys, job_id),
            args=[
                *job_argv(self.settings, job_id),
                state,
                result_json,
                error.model_dump_json() if error is not None else "",
                worker,
                meta_key,
                meta,
                str(self.settings.result_expires),
            ],
        )
        return _text(final)

    def store_celery_meta(self, key: str, meta: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.set(key, meta, ex=self.settings.result_expires)
            pipe.publish(key, meta)
            pipe.execute()

    def read(self, job_id: str) -> JobStatus | None:
        raw = cast(dict[str, str], self.client.hgetall(self.keys.job(job_id)))
        return JobStatus.from_hash(job_id, raw) if raw else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
