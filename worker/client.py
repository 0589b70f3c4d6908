"""Submit skill jobs, poll them, stream their events, cancel them, fetch artifacts.

:class:`AsyncSkillClient` is the implementation; :class:`SkillClient` runs it
on a private event-loop thread so synchronous code gets the same behaviour.
Callers never need Celery's API.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from celery import Celery
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from .app import create_app
from .artifacts import JOB_ID, ArtifactStore, open_store
from .context import ArtifactRef
from .envelope import nesting_depth_over
from .errors import (
    InvalidArgs,
    JobCancelled,
    JobFailed,
    JobNotFound,
    UnknownSkill,
)
from .events import dumps
from .jobs import TERMINAL_STATES, JobStatus, cancel_call
from .keys import Keys
from .registry import read_catalog_async, read_workers_async, served_within
from .runtime import async_redis
from .schema_check import check_args
from .scripts import CANCEL, SUBMIT
from .settings import Settings
from .signing import sign
from .subscription import IDLE, RECONNECTED, Deadline, Subscription

T = TypeVar("T")
Envelope = dict[str, Any]
REGISTRY_CACHE_SECONDS = 2.0


class SkillInfo(BaseModel):
    """A skill as registered by running workers."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    queue: str = "default"
    tags: list[str] = []
    scopes: list[str] = []
    secrets: list[str] = []
    time_limit: float | None = None
    args_schema: dict[str, Any] = {}
    workers: list[str] = []
    last_seen: float | None = None

    @property
    def live(self) -> bool:
        """Whether a running worker serves the skill now (else it is known from the catalog)."""
        return bool(self.workers)


@dataclass(frozen=True)
class Order:
    """A checked, recorded submission, ready to hand to Celery."""

    job_id: str
    task_name: str
    kwargs: dict[str, Any]
    queue: str

    def send(self, app: Celery) -> None:
        app.send_task(self.task_name, kwargs=self.kwargs, task_id=self.job_id, queue=self.queue)


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


class AsyncSkillClient:
    """The asyncio client. Create it inside the loop that will use it."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.settings = settings or Settings()
        self.keys = Keys(self.settings.key_prefix)
        self._app = app
        self._redis: Redis | None = None
        self._store: ArtifactStore | None = None
        self._registry: tuple[float, dict[str, SkillInfo]] | None = None
        self._submit_script: AsyncScript | None = None
        self._cancel_script: AsyncScript | None = None

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = async_redis(
                self.settings.effective_redis_url, self.settings.redis_retries
            )
        return self._redis

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = create_app(self.settings)
        return self._app

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def __aenter__(self) -> AsyncSkillClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- registry ---

    async def skills(self) -> list[SkillInfo]:
        """Skills running workers serve, merged across workers, then skills of the
        catalog that a worker served within ``SKILLQ_SKILL_GRACE`` (``workers`` empty)."""
        merged: dict[str, dict[str, Any]] = {}
        for entry in await read_workers_async(self.redis, self.keys):
            for described in entry.get("skills", []):
                item = merged.setdefault(described["name"], {**described, "workers": []})
                item["workers"].append(entry.get("hostname", "?"))
        for name, entry in (await read_catalog_async(self.redis, self.keys)).items():
            if name in merged:
                merged[name]["last_seen"] = entry.get("last_seen")
            elif served_within(entry, self.settings.skill_grace):
                merged[name] = {**entry, "workers": []}
        found = {name: SkillInfo.model_validate(item) for name, item in merged.items()}
        self._registry = (time.monotonic(), found)
        return [found[name] for name in sorted(found)]

    async def _skill(self, name: str) -> SkillInfo:
        cached = self._registry
        if (
            cached is None
            or time.monotonic() - cached[0] > REGISTRY_CACHE_SECONDS
            or (name not in cached[1])
        ):
            await self.skills()
            cached = self._registry
        assert cached is not None
        if name not in cached[1]:
            raise UnknownSkill(name, list(cached[1]))
        return cached[1][name]

    # --- submit ---

    async def submit(
        self,
        skill: str,
        args: dict[str, Any] | None = None,
        *,
        auth: dict[str, Any] | BaseModel | None = None,
        queue: str | None = None,
        job_id: str | None = None,
    ) -> str:
        """Enqueue a job and return its id; an existing ``job_id`` is not run twice."""
        order = await self.reserve(skill, args, auth=auth, queue=queue, job_id=job_id)
        if order is not None:
            try:
                await asyncio.to_thread(order.send, self.app)
            except BaseException:
                await self.forget(order.job_id)
                raise
            return order.job_id
        assert job_id is not None
        return job_id

    async def reserve(
        self,
        skill: str,
        args: dict[str, Any] | None,
        *,
        auth: dict[str, Any] | BaseModel | None,
        queue: str | None,
        job_id: str | None,
    ) -> Order | None:
        """Check a submission and write its ``queued`` record; None if the id exists."""
        info = await self._skill(skill)
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise InvalidArgs(skill, f"args must be a JSON object, not {type(args).__name__}")
        limit = self.settings.max_args_depth
        if nesting_depth_over(args, limit):
            raise InvalidArgs(
                skill, f"args nest deeper than {limit} levels (SKILLQ_MAX_ARGS_DEPTH)"
            )
        try:
            encoded = dumps(args)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidArgs(skill, f"args are not JSON: {exc}") from exc
        if len(encoded.encode()) > self.settings.max_args_bytes:
            raise InvalidArgs(skill, f"args are over the {self.settings.max_args_bytes}-byte limit")
        found = check_args(args, info.args_schema)
        if found:
            raise InvalidArgs(skill, "; ".join(found))
        auth_value = auth.model_dump(mode="json") if isinstance(auth, BaseModel) else auth
        job_id = job_id or str(uuid.uuid4())
        if not JOB_ID.match(job_id):
            raise InvalidArgs(skill, f"job id {job_id!r} must match {JOB_ID.pattern}")
        target_queue = queue or info.queue
        if self._submit_script is None:
            self._submit_script = self.redis.register_script(SUBMIT)
        notice = (
            ""
            if info.live
            else f"no running worker serves skill {skill!r} now; the job waits in queue "
            f"{target_queue!r} until one starts"
        )
        created = await self._submit_script(
            keys=[self.keys.job(job_id)],
            args=[
                skill,
                target_queue,
                repr(time.time()),
                str(self.settings.job_retention),
                notice,
            ],
        )
        if not int(created):
            return None  # already submitted: never a second job
        kwargs: dict[str, Any] = {"args": args}
        key = self.settings.auth_secret
        if key is not None:
            # Sign the args as the worker will read them: after a JSON round trip.
            kwargs["auth"] = sign(
                key, job_id, skill, json.loads(encoded), auth_value or {}, self.settings.auth_ttl
            )
        elif auth_value is not None:
            kwargs["auth"] = auth_value
        return Order(job_id, f"skills.{skill}", kwargs, target_queue)

    async def forget(self, job_id: str) -> None:
        """Drop the record of a submission Celery did not accept."""
        await self.redis.delete(self.keys.job(job_id))

    # --- polling ---

    async def status(self, job_id: str) -> JobStatus:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        return JobStatus.from_hash(job_id, raw)

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for the job to finish (pushed, not polled) and return its result."""
        status = await self.status(job_id)
        if not status.finished:
            status = await self._wait_finished(job_id, timeout)
        if status.state == "succeeded":
            return status.result
        if status.state == "cancelled":
            raise JobCancelled(job_id)
        error = status.error
        raise JobFailed(
            job_id,
            error.type if error else "Error",
            error.message if error else "unknown",
            error.code if error else "handler_error",
        )

    async def _wait_finished(self, job_id: str, timeout: float | None) -> JobStatus:
        """Subscribe, then re-read the record, then wait for the terminal event."""
        deadline = Deadline(timeout)
        async with Subscription(self.redis, self.keys.events(job_id), deadline) as channel:
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
        """Replay the job's stream after ``after``, then follow live events.

        The subscription opens before the replay is read, so nothing falls in
        between; envelopes are ordered by ``seq``, duplicates at the seam are
        dropped, and a gap (a missed message, or a lost subscription) is
        filled from the stream. Events the stream no longer holds (trimmed to
        ``SKILLQ_STREAM_MAXLEN``, or expired) are reported by one envelope of
        kind ``gap`` whose payload names the missing seqs, never skipped
        silently.
        """
        deadline = Deadline(timeout)
        channel = Subscription(self.redis, self.keys.events(job_id), deadline)
        try:
            if follow:
                await channel.open()
            batch, finished = await self._catch_up(job_id, after, first=True)
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

    async def _catch_up(
        self, job_id: str, last: int, *, first: bool = False
    ) -> tuple[list[Envelope], bool]:
        """Events after ``last`` from the stream, and whether the job has finished.

        Events the record counted but the stream no longer holds come back
        as one ``gap`` envelope.
        """
        batch = await self._read_stream(job_id, last)
        if batch:
            return batch, False
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        if not raw:
            if first:
                raise JobNotFound(job_id)
            return [], True  # the record expired: nothing more will come
        status = JobStatus.from_hash(job_id, raw)
        if status.last_seq > last:
            # Written between the two reads, or trimmed away: the stream says which.
            batch = await self._read_stream(job_id, last)
            if not batch:
                batch = [gap_marker(job_id, last, status.last_seq + 1)]
        return batch, status.finished

    async def _read_stream(self, job_id: str, after: int) -> list[Envelope]:
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(self.keys.stream(job_id), f"0-{after + 1}", "+"),
        )
        return [json.loads(fields["e"]) for _, fields in entries]

    # --- cancel ---

    async def cancel(self, job_id: str) -> bool:
        """Ask for the job to stop; False if it had already finished."""
        keys, argv = cancel_call(self.keys, self.settings, job_id, force=False)
        if self._cancel_script is None:
            self._cancel_script = self.redis.register_script(CANCEL)
        outcome = str(await self._cancel_script(keys=keys, args=argv))
        if outcome == "missing":
            raise JobNotFound(job_id)
        if outcome == "finished":
            return False
        await asyncio.to_thread(self.app.control.revoke, job_id)
        return True

    # --- artifacts ---

    async def artifacts(self, job_id: str) -> list[ArtifactRef]:
        return [info.ref() for info in (await self.status(job_id)).artifacts]

    async def read_artifact(self, ref: ArtifactRef | str) -> bytes:
        return await self.store.get(ref.uri if isinstance(ref, ArtifactRef) else ref)

    async def artifact_url(self, ref: ArtifactRef | str, expires: int = 3600) -> str:
        return await self.store.url(ref.uri if isinstance(ref, ArtifactRef) else ref, expires)


async def anext_of(stream: AsyncGenerator[Envelope, None]) -> Envelope:
    return await stream.__anext__()


class SkillClient:
    """The synchronous client: the same methods, run on a private loop thread."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="skillq-client", daemon=True
        )
        self._thread.start()
        self._client = AsyncSkillClient(settings, app=app)
        self.settings = self._client.settings

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def app(self) -> Celery:
        return self._client.app

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._client.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> SkillClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def skills(self) -> list[SkillInfo]:
        return self._run(self._client.skills())

    def submit(
        self,
        skill: str,
        args: dict[str, Any] | None = None,
        *,
        auth: dict[str, Any] | BaseModel | None = None,
        queue: str | None = None,
        job_id: str | None = None,
    ) -> str:
        order = self._run(self._client.reserve(skill, args, auth=auth, queue=queue, job_id=job_id))
        if order is None:
            assert job_id is not None
            return job_id
        try:
            order.send(self.app)  # in the caller's thread: no hand-off for a blocking send
        except BaseException:
            self._run(self._client.forget(order.job_id))
            raise
        return order.job_id

    def status(self, job_id: str) -> JobStatus:
        return self._run(self._client.status(job_id))

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        return self._run(self._client.result(job_id, timeout))

    def events(
        self, job_id: str, *, after: int = 0, follow: bool = True, timeout: float | None = None
    ) -> Iterator[Envelope]:
        stream = self._client.events(job_id, after=after, follow=follow, timeout=timeout)
        assert isinstance(stream, AsyncGenerator)
        try:
            while True:
                try:
                    yield self._run(anext_of(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())

    def cancel(self, job_id: str) -> bool:
        return self._run(self._client.cancel(job_id))

    def artifacts(self, job_id: str) -> list[ArtifactRef]:
        return self._run(self._client.artifacts(job_id))

    def read_artifact(self, ref: ArtifactRef | str) -> bytes:
        return self._run(self._client.read_artifact(ref))

    def artifact_url(self, ref: ArtifactRef | str, expires: int = 3600) -> str:
        return self._run(self._client.artifact_url(ref, expires))
