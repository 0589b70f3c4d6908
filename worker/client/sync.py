"""The blocking client: the methods of :class:`AsyncSkillClient` for
synchronous code, with the calls every job makes run in the caller's thread."""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar, cast

import redis
from celery import Celery
from pydantic import BaseModel

from ..core.errors import JobNotFound
from ..core.settings import Settings
from ..interface.capabilities import AgentInfo
from ..interface.context import ArtifactRef
from ..store.agents import all_agents, matching
from ..store.artifacts import ArtifactStore
from ..store.connections import sync_redis
from ..store.job_status import JobStatus
from ..store.registry import read_catalog, read_workers
from ..store.scripts import SUBMIT, UNSUBMIT
from ..wire.skill_info import SkillCache, SkillInfo, merge_skills
from ..wire.submission import Order, SubmitOptions, draft, eta_of, outcome
from ..workspace.grants import GrantSigner
from ..workspace.revocations import Revocation
from ..workspace.workspace_client import GrantedWorkspace
from .answers import AnswerMethods
from .asynchronous import AsyncSkillClient
from .following import Envelope
from .listing import JobPage
from .logs import LogLine, log_lines
from .quotas import QuotaMethods
from .recording import record
from .retrying import RetryMethods
from .schedules import ScheduleMethods
from .stats import StatsMethods
from .subscription import Deadline
from .waiting import FinishWaiter

__all__ = ["AsyncSkillClient", "Order", "SkillClient", "SkillInfo"]

T = TypeVar("T")


class Workspace:
    """A granted workspace for synchronous code: the same methods, blocking."""

    def __init__(
        self, workspace: GrantedWorkspace, run: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        self._workspace = workspace
        self._run = run
        self.grant = workspace.grant

    def read(self, path: str) -> bytes:
        return cast(bytes, self._run(self._workspace.read(path)))

    def write(self, path: str, data: bytes) -> None:
        self._run(self._workspace.write(path, data))

    def list(self, prefix: str = "") -> builtins.list[str]:
        return cast(builtins.list[str], self._run(self._workspace.list(prefix)))

    def delegate(self, scopes: builtins.list[str], *, ttl: float | None = None) -> str:
        return cast(str, self._run(self._workspace.delegate(scopes, ttl=ttl)))


class SkillClient(ScheduleMethods, AnswerMethods, RetryMethods, StatsMethods, QuotaMethods):
    """The synchronous client: the same methods as :class:`AsyncSkillClient`.

    The calls every job makes (``submit``, ``status``, ``result`` of a
    finished job) run in the caller's thread on a blocking Redis client: a
    hop to an event loop and the asyncio client cost more CPU than the round
    trip itself. Waits and event streams run on a private loop thread.
    """

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="skillq-client", daemon=True
        )
        self._thread.start()
        self._client = AsyncSkillClient(settings, app=app)
        self.settings = self._client.settings
        self.keys = self._client.keys
        self._redis = sync_redis(self.settings)
        self._submit_script = self._redis.register_script(SUBMIT)
        self._cache = SkillCache()
        self._waiter = FinishWaiter(self._redis, self.keys)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _scheduler(self) -> AsyncSkillClient:
        return self._client

    def _answerer(self) -> AsyncSkillClient:
        return self._client

    @property
    def app(self) -> Celery:
        return self._client.app

    @property
    def redis(self) -> redis.Redis:
        """The blocking Redis client this client reads records with."""
        return self._redis

    @property
    def store(self) -> ArtifactStore:
        return self._client.store

    @property
    def grants(self) -> GrantSigner:
        """The grant key from the settings (:class:`ConfigurationError` if none)."""
        return self._client.grants

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._client.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._waiter.close()
        self._redis.close()

    def __enter__(self) -> SkillClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def skills(self) -> list[SkillInfo]:
        found = merge_skills(
            read_workers(self._redis, self.keys),
            read_catalog(self._redis, self.keys),
            self.settings.skill_grace,
        )
        return self._cache.update(found)

    def skill(self, name: str) -> SkillInfo:
        """See :meth:`AsyncSkillClient.skill`."""
        if self._cache.stale_for(name):
            self.skills()
        return self._cache.get(name)

    def agents(
        self,
        *,
        tag: str | None = None,
        capability: str | None = None,
        skill: str | None = None,
    ) -> list[AgentInfo]:
        """Live agents of this deployment matching every filter given."""
        remote = cast(dict[str, str], self._redis.hgetall(self.keys.remote_agents()))
        found = all_agents(read_workers(self._redis, self.keys), remote)
        return matching(found.values(), tag=tag, capability=capability, skill=skill)

    def submit(
        self,
        skill: str,
        args: dict[str, Any] | None = None,
        *,
        auth: dict[str, Any] | BaseModel | None = None,
        queue: str | None = None,
        job_id: str | None = None,
        grant: str | None = None,
        owner: str | None = None,
        idempotency_key: str | None = None,
        countdown: float | None = None,
        eta: datetime | float | None = None,
        priority: int | None = None,
        concurrency_key: str | None = None,
        time_limit: float | None = None,
        budget: dict[str, float] | None = None,
    ) -> str:
        """Enqueue a job and return its id; an existing ``job_id`` is not run twice,
        nor is a second job made for an ``idempotency_key`` seen within the
        record retention (its first job's id is returned).

        ``countdown`` (seconds) or ``eta`` (an aware datetime, or Unix seconds):
        the job is ``queued`` (with its ``eta``) until then. ``priority``: 0 (the
        default) to 9, the most urgent; a queue's workers take higher ones first.
        ``concurrency_key``: the jobs of a skill with ``key_concurrency=M`` that
        share a key run at most M at a time across all workers.

        ``grant``: a workspace grant token (:meth:`workspace_grant`) the job's
        ``ctx.workspace`` is bound to; the skill must declare workspace access.
        ``owner``: who the job belongs to; :meth:`owned_jobs` lists them.
        ``time_limit``: seconds this job may run (at most the skill's own limit);
        past it the job fails ``JobTimeout``. ``budget``: what it may ``ctx.spend``
        per unit (``{"usd": 0.5}``), at most its skill's own budget.
        """
        options = SubmitOptions(
            skill,
            args,
            auth=auth,
            queue=queue,
            job_id=job_id,
            grant=grant,
            owner=owner,
            idempotency_key=idempotency_key,
            eta=eta_of(countdown, eta),
            priority=priority,
            concurrency_key=concurrency_key,
            time_limit=time_limit,
            budget=budget,
        )
        return self.submit_options(options)

    def submit_options(self, options: SubmitOptions) -> str:
        """See :meth:`AsyncSkillClient.submit_options`; on this thread, with the
        blocking Redis client (a hop to the loop would cost more than the call)."""
        tracing = self._client.tracing
        skill = options.skill
        with tracing.span(
            f"skillq.submit {skill}", {"skillq.skill": skill}, kind="PRODUCER"
        ) as span:
            options = replace(options, headers={**tracing.headers(), **(options.headers or {})})
            planned = draft(
                self.settings, self.keys, self.skill(skill), options, direct=self._client.direct
            )
            if span is not None:
                span.set_attribute("skillq.job_id", planned.order.job_id)
            submitted, created = record(self.settings, self._redis, self._submit_script, planned)
            if not created or planned.queued_by_script:
                return submitted  # already submitted: never a second job
            try:
                planned.order.send(self.app)
            except BaseException:
                # Celery did not take it: no record, no index entries, no key marker.
                self._redis.register_script(UNSUBMIT)(keys=planned.submit_keys, args=[submitted])
                raise
            return submitted

    def jobs(
        self,
        *,
        skill: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> JobPage:
        """See :meth:`AsyncSkillClient.jobs`."""
        return self._run(
            self._client.jobs(
                skill=skill, state=state, since=since, limit=limit, cursor=cursor, owner=owner
            )
        )

    def owned_jobs(
        self, owner: str, *, limit: int = 50, before: float | None = None
    ) -> list[JobStatus]:
        """See :meth:`AsyncSkillClient.owned_jobs`."""
        return self._run(self._client.owned_jobs(owner, limit=limit, before=before))

    def status(self, job_id: str) -> JobStatus:
        raw = cast(dict[str, str], self._redis.hgetall(self.keys.job(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        return JobStatus.from_hash(job_id, raw)

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for the job to finish (pushed, not polled) and return its result."""
        status = self.status(job_id)
        if not status.finished:
            waited = self._waiter.wait(job_id, self.status, Deadline(timeout))
            if waited is None:  # another thread waits on the shared connection
                waited = self._run(self._client._wait_finished(job_id, timeout))
            status = waited
        return outcome(status)

    def events(
        self, job_id: str, *, after: int = 0, follow: bool = True, timeout: float | None = None
    ) -> Iterator[Envelope]:
        stream = self._client.events(job_id, after=after, follow=follow, timeout=timeout)
        assert isinstance(stream, AsyncGenerator)
        try:
            while True:
                try:
                    yield self._run(next_of(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())

    def logs(
        self, job_id: str, *, follow: bool = False, timeout: float | None = None
    ) -> Iterator[LogLine]:
        """The lines the job's handler logged, in order (``follow``: until it ends)."""
        return log_lines(self.events(job_id, follow=follow, timeout=timeout))

    def cancel(self, job_id: str) -> bool:
        return self._run(self._client.cancel(job_id))

    def add_remote_agent(self, url: str, *, name: str | None = None) -> AgentInfo:
        """Register the A2A agent whose card is at ``url``: ``ctx.discover`` finds it and
        ``ctx.call(<name>, ...)`` reaches it over A2A."""
        return self._run(self._client.add_remote_agent(url, name=name))

    def remove_remote_agent(self, name: str) -> bool:
        """Forget a remote agent; False if none had that name."""
        return bool(self._redis.hdel(self.keys.remote_agents(), name))

    def workspace_grant(self, workspace: str, scopes: list[str], *, ttl: float = 3600.0) -> str:
        """Mint a grant for ``workspace`` with ``scopes`` (``read:<prefix>`` /
        ``write:<prefix>``, ``""`` the whole workspace) that ends after ``ttl`` s."""
        return self._client.grants.mint(workspace, scopes, ttl=ttl)

    def revoke_grant(self, grant: str) -> str:
        """Refuse a grant (by id or token) and every delegate of it from now on; its id."""
        revocation = Revocation.of(self.keys, grant, self.settings.grant_max_ttl)
        self._redis.set(revocation.key, "1", ex=revocation.ttl)
        return revocation.grant_id

    def workspace(self, grant: str) -> Workspace:
        """The workspace files a grant allows (see :meth:`AsyncSkillClient.workspace`)."""
        return Workspace(self._run(self._client.workspace(grant)), self._run)

    def artifacts(self, job_id: str) -> list[ArtifactRef]:
        return self._run(self._client.artifacts(job_id))

    def read_artifact(self, ref: ArtifactRef | str) -> bytes:
        return self._run(self._client.read_artifact(ref))

    def artifact_url(self, ref: ArtifactRef | str, expires: int = 3600) -> str:
        return self._run(self._client.artifact_url(ref, expires))


async def next_of(stream: AsyncGenerator[Envelope, None]) -> Envelope:
    """A coroutine (what the loop thread accepts) for the stream's next item."""
    return await anext(stream)
