"""Job records (``<prefix>:job:<id>``) and the scripted steps that change them.

A record is a Redis hash: scalar fields, JSON-encoded ``result`` and
``error``, one ``artifact:<name>`` field per artifact (so a rerun overwrites
instead of duplicating) and the event ``seq`` counter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ..core.errors import (
    CallerEnded,
    DeliveryLimitExceeded,
    DeliverySuperseded,
)
from ..core.settings import Settings
from ..interface.steps import StepDone
from . import scripts
from .celery_results import meta_database, records_database
from .connections import sync_redis
from .job_status import ARTIFACT_FIELD, STEP_FIELD, ArtifactInfo, JobError, JobStatus, job_error
from .keys import Keys
from .outage import outlast, outlast_async
from .replication import call_replicated, confirm_replicas, required_replicas, timeout_ms
from .scriptfiles import DirectScript


@dataclass(frozen=True)
class StartDecision:
    action: Literal["run", "cancelled", "done", "failed", "replayed"]
    attempts: int
    state: str
    retries: int = 0  # retries scheduled before this delivery (a skill's ``retries``)
    ready_at: float | None = None  # "run": when the job could first start (eta or submit)
    delivery: str = ""  # this delivery's token: the run's writes carry it (fencing)


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
            keys.prefix,
        ],
    )


class JobStore:
    """What a running handler writes (events, artifacts), on the loop's async client."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._emit: AsyncScript = redis.register_script(scripts.EMIT)
        self._record: AsyncScript = redis.register_script(scripts.RECORD)

    async def emit(
        self, job_id: str, first: int, events: Sequence[tuple[str, str]], delivery: str = ""
    ) -> int:
        """Write pre-encoded ``(envelope tail, progress)`` events.

        ``first`` is the delivery's running number of ``events[0]``; a run's
        ``delivery`` token fences it: once a later delivery took the job over,
        :class:`~worker.core.errors.DeliverySuperseded` is raised instead.
        """
        tails = "\n".join(tail for tail, _ in events)
        if tails.count("\n") != len(events) - 1:
            raise ValueError("an encoded event holds a raw newline")  # never from dumps()
        progress = next((text for _, text in reversed(events) if text), "")
        keys = job_keys(self.keys, job_id)
        args = [
            *job_argv(self.settings, job_id),
            str(len(events)),
            str(first),
            tails,
            progress,
            delivery,
        ]
        # EMIT skips events the record says this delivery already wrote.
        seq = await outlast_async(
            self.settings.redis_outage_budget,
            f"writing events of job {job_id}",
            lambda: self._emit(keys=keys, args=args),
        )
        if int(seq) < 0:
            raise DeliverySuperseded(job_id)
        return int(seq)

    async def record_artifact(self, job_id: str, info: ArtifactInfo, delivery: str = "") -> None:
        await self._record_field(
            job_id, ARTIFACT_FIELD + info.name, info.model_dump_json(), delivery, "an artifact"
        )

    async def record_step(self, job_id: str, name: str, done: StepDone, delivery: str) -> None:
        await self._record_field(job_id, STEP_FIELD + name, done.stored(), delivery, "a step")

    async def load_step(self, job_id: str, name: str) -> StepDone | None:
        text = await outlast_async(
            self.settings.redis_outage_budget,
            f"reading a step of job {job_id}",
            lambda: self.redis.hget(self.keys.job(job_id), STEP_FIELD + name),
        )
        return None if text is None else StepDone.parse(str(text))

    async def load_field(self, job_id: str, field: str) -> str | None:
        """A field of the job's record (a step, a sleep's wake time)."""
        text = await outlast_async(
            self.settings.redis_outage_budget,
            f"reading job {job_id}",
            lambda: self.redis.hget(self.keys.job(job_id), field),
        )
        return None if text is None else str(text)

    async def record_field(self, job_id: str, field: str, value: str, delivery: str) -> None:
        await self._record_field(job_id, field, value, delivery, field.split(":", 1)[0])

    async def _record_field(
        self, job_id: str, field: str, value: str, delivery: str, what: str
    ) -> None:
        keys = job_keys(self.keys, job_id)
        args = [*job_argv(self.settings, job_id), field, value, delivery]
        written = await outlast_async(
            self.settings.redis_outage_budget,
            f"recording {what} of job {job_id}",
            lambda: self._record(keys=keys, args=args),
        )
        if not int(written):
            raise DeliverySuperseded(job_id)


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
        self._start = DirectScript(client, scripts.START)
        self._finish = DirectScript(client, scripts.FINISH)
        self._retry = DirectScript(client, scripts.RETRY)
        self._suspend = DirectScript(client, scripts.SUSPEND)
        self._received = DirectScript(client, scripts.RECEIVED)
        self._over_limit = job_error(
            DeliveryLimitExceeded(settings.max_deliveries), with_traceback=False
        ).model_dump_json()
        orphaned = job_error(CallerEnded(), with_traceback=False).model_dump_json()
        self._children_args = [keys.prefix, str(settings.cancel_ttl), orphaned]
        database = meta_database(settings)
        self._meta_db = (database or "", records_database(settings))
        # A Redis result backend on another server: written with a client of its own.
        self._meta_elsewhere = database is None and settings.effective_result_backend.startswith(
            ("redis://", "rediss://", "sentinel://")
        )
        self._meta_client: redis.Redis | None = None

    def start(self, job_id: str, skill: str, worker: str, queue: str) -> StartDecision:
        """Count the delivery and mark the job running, in one round trip.

        Retried through a Redis outage: the delivery token makes a retry
        after a lost reply count nothing twice.
        """
        delivery = uuid.uuid4().hex
        keys = [
            *job_keys(self.keys, job_id),
            self.keys.cancel(job_id),
            self.keys.consumed(job_id),
            self.keys.taken,
        ]
        args = [
            *job_argv(self.settings, job_id),
            skill,
            worker,
            queue,
            delivery,
            str(self.settings.max_deliveries),
            self._over_limit,
            *self._children_args,
        ]
        reply = outlast(
            self.settings.redis_outage_budget,
            f"starting job {job_id}",
            lambda: self._start(keys=keys, args=args),
        )
        action, attempts, state = reply[:3]
        retries = int(reply[3]) if len(reply) > 3 else 0
        ready = _text(reply[4]) if len(reply) > 4 else ""
        return StartDecision(
            _text(action),  # type: ignore[arg-type]
            int(attempts),
            _text(state),
            retries,
            float(ready) if ready else None,
            delivery,
        )

    def received(self, job_id: str, skill: str, queue: str, eta: float) -> bool:
        """Record a delayed job from a plain producer as ``queued`` until its eta."""
        keys = [self.keys.job(job_id), self.keys.jobs_index(), self.keys.skill_index(skill)]
        args = [skill, queue, now_json(), str(self.settings.job_retention), repr(eta), job_id]
        return bool(self._received(keys=keys, args=args))

    def retry(
        self, job_id: str, error: JobError, next_run_at: float, retries: int, delivery: str = ""
    ) -> str:
        """Mark a failed attempt ``retrying`` (its error kept); the state it is in
        (``superseded`` when a later delivery took the job over)."""
        keys = [*job_keys(self.keys, job_id), self.keys.taken]
        args = [
            *job_argv(self.settings, job_id),
            error.model_dump_json(),
            repr(next_run_at),
            str(retries),
            *self._children_args,
            delivery,
        ]
        state = outlast(
            self.settings.redis_outage_budget,
            f"scheduling a retry of job {job_id}",
            lambda: self._retry(keys=keys, args=args),
        )
        return _text(state)

    def suspend(
        self, job_id: str, until: float, state: str, extra: str, notice: str, delivery: str
    ) -> str:
        """End an attempt that waits (``ctx.sleep``) until ``until``; the state it
        is in (``suspended``, ``superseded``, or what another process set)."""
        keys = [*job_keys(self.keys, job_id), self.keys.taken]
        args = [
            *job_argv(self.settings, job_id),
            state,
            repr(until),
            extra,
            delivery,
            notice,
            self.keys.prefix,
        ]
        reply = outlast(
            self.settings.redis_outage_budget,
            f"suspending job {job_id}",
            lambda: self._suspend(keys=keys, args=args),
        )
        return _text(reply)

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        worker: str,
        result_json: str = "",
        error: JobError | None = None,
        celery_meta: tuple[str, str] | None = None,
        signed_until: int | None = None,
        delivery: str = "",
    ) -> str:
        """Finalise the record; ``celery_meta`` (key, JSON) also stores Celery's result.

        ``signed_until``: the call was signed and its signature is valid until
        then; a replay of it is refused until that time, even without a record.
        ``delivery``: the run's token; ``superseded`` comes back, and nothing
        is stored, when a later delivery took the job over.
        """
        meta_key, meta = celery_meta or ("", "")
        consumed_ttl = int(signed_until - time.time()) + 1 if signed_until else 0
        keys = [*job_keys(self.keys, job_id), self.keys.taken]
        args = [
            *job_argv(self.settings, job_id),
            state,
            result_json,
            error.model_dump_json() if error is not None else "",
            worker,
            meta_key,
            meta,
            str(self.settings.result_expires),
            self.keys.consumed(job_id) if consumed_ttl > 0 else "",
            str(consumed_ttl),
            *self._meta_db,
            *self._children_args,
            delivery,
        ]
        # FINISH leaves a terminal record as it is, so a retry is harmless.
        replicas = required_replicas(self.settings)
        final, reached = outlast(
            self.settings.redis_outage_budget,
            f"storing the outcome of job {job_id}",
            lambda: call_replicated(
                self.client,
                self._finish,
                keys=keys,
                args=args,
                replicas=replicas,
                wait_ms=timeout_ms(self.settings),
            ),
        )
        if reached < replicas:
            what = f"the outcome of job {job_id}"
            confirm_replicas(self.client, self.settings, what, self.keys.replication_probe, reached)
        return _text(final)

    def store_celery_meta(self, key: str, meta: str) -> None:
        """Celery's result meta, wherever its Redis result backend is."""
        client = self.client
        if self._meta_elsewhere:
            if self._meta_client is None:
                self._meta_client = sync_redis(
                    self.settings, self.settings.effective_result_backend
                )
            client = self._meta_client
        client.register_script(scripts.CELERY_META)(
            keys=[],
            args=[
                key,
                meta,
                str(self.settings.result_expires),
                *(("", "") if self._meta_elsewhere else self._meta_db),
            ],
        )

    def read(self, job_id: str) -> JobStatus | None:
        raw = cast(dict[str, str], self.client.hgetall(self.keys.job(job_id)))
        return JobStatus.from_hash(job_id, raw) if raw else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
