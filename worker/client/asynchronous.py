"""The asyncio client: submit skill jobs, poll them, stream their events,
cancel them, fetch artifacts. Callers never need Celery's API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar, cast

from celery import Celery
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ..core.errors import JobNotFound
from ..core.settings import Settings
from ..core.tracing import tracing_for
from ..interface.capabilities import AgentInfo
from ..interface.context import ArtifactRef
from ..store.agents import all_agents, matching, read_card_entry, remote_agents
from ..store.artifacts import ArtifactStore, open_store
from ..store.connections import async_redis
from ..store.job_status import JobStatus
from ..store.jobs import cancel_call
from ..store.keys import Keys
from ..store.registry import read_catalog_async, read_workers_async
from ..store.scripts import CANCEL, SUBMIT, UNSUBMIT
from ..wire.celery_app import configured_app
from ..wire.skill_info import SkillCache, SkillInfo, merge_skills
from ..wire.submission import Draft, Order, SubmitOptions, draft, eta_of, outcome
from ..wire.task_message import DirectPublish
from ..workspace.grants import Grant, GrantSigner
from ..workspace.revocations import Revocation, check_not_revoked
from ..workspace.workspace_client import GrantedWorkspace
from ..workspace.workspace_store import open_workspace_store
from .answers import AsyncAnswerMethods
from .fanout import Fanout, Follower
from .following import CATCH_UP_CHUNK, Envelope, JobFollower
from .listing import JobPage, list_jobs, owned_jobs
from .logs import LogLine, alog_lines
from .quotas import AsyncQuotaMethods
from .recording import record_async
from .retrying import AsyncRetryMethods
from .schedules import AsyncScheduleMethods
from .stats import AsyncStatsMethods
from .subscription import Deadline, Subscription

__all__ = ["AsyncSkillClient", "Order", "SkillInfo"]

T = TypeVar("T")


class AsyncSkillClient(
    AsyncScheduleMethods,
    AsyncAnswerMethods,
    AsyncRetryMethods,
    AsyncStatsMethods,
    AsyncQuotaMethods,
):
    """The asyncio client. Create it inside the loop that will use it."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.settings = settings or Settings()
        self.keys = Keys(self.settings.key_prefix)
        self.tracing = tracing_for(self.settings)
        self._app = app
        # A caller's own Celery app may route or sign differently: let it publish.
        self.direct = None if app is not None else DirectPublish.for_settings(self.settings)
        self._redis: Redis | None = None
        self._store: ArtifactStore | None = None
        self._cache = SkillCache()
        self._submit_script: AsyncScript | None = None
        self._cancel_script: AsyncScript | None = None
        self._grants: GrantSigner | None = None
        self.fanout: Fanout | None = None  # a server's followers, on their own (use_fanout)

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = async_redis(self.settings)
        return self._redis

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = configured_app(self.settings)
        return self._app

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def use_fanout(self, buffer: int) -> None:
        """Follow every job of this client on one shared pub/sub connection and a pool
        of its own (a server's many streams), each buffering at most ``buffer`` events."""
        self.fanout = Fanout(self.settings, buffer=buffer)

    @property
    def _chunk(self) -> int:
        return CATCH_UP_CHUNK if self.fanout is None else min(CATCH_UP_CHUNK, self.fanout.buffer)

    def _follow(self, job_id: str, deadline: Deadline) -> Subscription | Follower:
        channel = self.keys.events(job_id)
        if self.fanout is not None:
            return self.fanout.follower(channel, deadline)
        return Subscription(self.redis, channel, deadline)

    async def aclose(self) -> None:
        if self.fanout is not None:
            await self.fanout.aclose()
            self.fanout = None
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
        found = merge_skills(
            await read_workers_async(self.redis, self.keys),
            await read_catalog_async(self.redis, self.keys),
            self.settings.skill_grace,
        )
        return self._cache.update(found)

    async def agents(
        self,
        *,
        tag: str | None = None,
        capability: str | None = None,
        skill: str | None = None,
    ) -> list[AgentInfo]:
        """Live agents of this deployment matching every filter given."""
        remote = cast(dict[str, str], await self.redis.hgetall(self.keys.remote_agents()))
        found = all_agents(await read_workers_async(self.redis, self.keys), remote)
        return matching(found.values(), tag=tag, capability=capability, skill=skill)

    async def add_remote_agent(self, url: str, *, name: str | None = None) -> AgentInfo:
        """Read the A2A agent card at ``url`` and register the agent by its name (or
        ``name``), so ``ctx.discover`` finds it and ``ctx.call(<name>, ...)`` reaches it."""
        entry = await read_card_entry(url, name)
        await self.redis.hset(self.keys.remote_agents(), entry["name"], json.dumps(entry))
        return remote_agents({entry["name"]: json.dumps(entry)})[entry["name"]]

    async def remove_remote_agent(self, name: str) -> bool:
        """Forget a remote agent; False if none had that name."""
        return bool(await self.redis.hdel(self.keys.remote_agents(), name))

    async def skill(self, name: str) -> SkillInfo:
        """One skill as the registry describes it (cached for a couple of seconds, as
        submits use it); :class:`UnknownSkill` naming the known ones if there is none."""
        if self._cache.stale_for(name):
            await self.skills()
        return self._cache.get(name)

    # --- submit ---

    async def submit(
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
        ``owner``: who the job belongs to (the HTTP server passes its caller);
        :meth:`owned_jobs` lists them. ``time_limit``: seconds this job may run
        (at most the skill's own limit); past it the job fails ``JobTimeout``.
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
        return await self.submit_options(options)

    async def submit_options(self, options: SubmitOptions) -> str:
        """Submit what :class:`SubmitOptions` describes: the one path every
        submission takes (both clients, the CLI, the HTTP server, A2A)."""
        name = f"skillq.submit {options.skill}"
        with self.tracing.span(name, {"skillq.skill": options.skill}, kind="PRODUCER") as span:
            options = replace(
                options, headers={**self.tracing.headers(), **(options.headers or {})}
            )
            submitted, planned = await self._reserve(options)
            if span is not None:
                span.set_attribute("skillq.job_id", submitted)
            if planned is None:
                return submitted  # already submitted: never a second job
            if not planned.queued_by_script:
                try:
                    await asyncio.to_thread(planned.order.send, self.app)
                except BaseException:
                    await self.redis.register_script(UNSUBMIT)(
                        keys=planned.submit_keys, args=[submitted]
                    )
                    raise
            return submitted

    async def _reserve(self, options: SubmitOptions) -> tuple[str, Draft | None]:
        """Check a submission and write its ``queued`` record (and queue its
        message when the script can): the job id, and the draft if this call
        created the job (None: the id, or the idempotency key's job, exists)."""
        info = await self.skill(options.skill)
        planned = draft(self.settings, self.keys, info, options, direct=self.direct)
        if self._submit_script is None:
            self._submit_script = self.redis.register_script(SUBMIT)
        submitted, created = await record_async(
            self.settings, self.redis, self._submit_script, planned
        )
        return submitted, planned if created else None

    # --- polling ---

    async def jobs(
        self,
        *,
        skill: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> JobPage:
        """Jobs newest first, filtered by skill, state, creation time (Unix
        seconds; for ``state="running"``, start time) and owner, a page at a time:
        pass the page's ``cursor`` back for the next one."""
        return await list_jobs(
            self.redis,
            self.keys,
            skill=skill,
            state=state,
            since=since,
            limit=limit,
            cursor=cursor,
            owner=owner,
        )

    async def owned_jobs(
        self, owner: str, *, limit: int = 50, before: float | None = None
    ) -> list[JobStatus]:
        """An owner's jobs, newest first: ``limit`` of them submitted before ``before``
        (a ``created_at`` from the previous page). O(page), never a scan."""
        return await owned_jobs(self.redis, self.keys, owner, limit=limit, before=before)

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
        return outcome(status)

    async def _wait_finished(self, job_id: str, timeout: float | None) -> JobStatus:
        """Subscribe, then re-read the record, then wait for the terminal event."""
        return await self._following().wait_finished(job_id, timeout)

    def logs(
        self, job_id: str, *, follow: bool = False, timeout: float | None = None
    ) -> AsyncIterator[LogLine]:
        """The lines the job's handler logged, in order (``follow``: until it ends)."""
        return alog_lines(self.events(job_id, follow=follow, timeout=timeout))

    def events(
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
        silently. A job whose record vanishes meanwhile raises
        :class:`JobNotFound`.
        """
        return self._following().events(job_id, after=after, follow=follow, timeout=timeout)

    def _following(self) -> JobFollower:
        redis = self.redis if self.fanout is None else self.fanout.redis
        return JobFollower(redis, self.keys, self._follow, self._chunk)

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

    # --- workspaces ---

    @property
    def grants(self) -> GrantSigner:
        """The grant key from the settings (:class:`ConfigurationError` if none)."""
        if self._grants is None:
            self._grants = GrantSigner.required(self.settings)
        return self._grants

    async def workspace_grant(
        self, workspace: str, scopes: list[str], *, ttl: float = 3600.0
    ) -> str:
        """Mint a grant for ``workspace`` with ``scopes`` (``read:<prefix>`` /
        ``write:<prefix>``, ``""`` the whole workspace) that ends after ``ttl`` s."""
        return self.grants.mint(workspace, scopes, ttl=ttl)

    async def revoke_grant(self, grant: str) -> str:
        """Refuse a grant (by id or token) and every delegate of it from now on; its id."""
        revocation = Revocation.of(self.keys, grant, self.settings.grant_max_ttl)
        await self.redis.set(revocation.key, "1", ex=revocation.ttl)
        return revocation.grant_id

    async def workspace(self, grant: str) -> GrantedWorkspace:
        """The workspace files a grant allows, for the application's side (put inputs
        in before a job, read its outputs after), checked like a job's."""
        verified = self.grants.verify(grant)

        async def not_revoked(item: Grant) -> None:
            await check_not_revoked(self.redis, self.keys, item)

        await not_revoked(verified)
        store = open_workspace_store(self.store)
        return GrantedWorkspace(verified, store, self.grants, not_revoked)

    # --- artifacts ---

    async def artifacts(self, job_id: str) -> list[ArtifactRef]:
        return [info.ref() for info in (await self.status(job_id)).artifacts]

    async def read_artifact(self, ref: ArtifactRef | str) -> bytes:
        return await self.store.get(ref.uri if isinstance(ref, ArtifactRef) else ref)

    async def artifact_url(self, ref: ArtifactRef | str, expires: int = 3600) -> str:
        """On S3, a URL a browser downloads from (a bare URI: served as bytes)."""
        uri, mime = (ref.uri, ref.mime_type) if isinstance(ref, ArtifactRef) else (ref, "")
        return await self.store.url(uri, expires, mime)
