"""Schedules from the client side: create, list, pause, resume, remove.

Mixed into both clients (:class:`AsyncScheduleMethods` into the async one,
:class:`ScheduleMethods` into the blocking one, which runs the async calls),
so each client module keeps to its own concern. Firing is the workers'
(:mod:`worker.runtime.schedules`); listing pages through the name indexes
(:mod:`worker.store.schedule_index`). A schedule with an owner counts toward
that owner's ``SKILLQ_MAX_SCHEDULES_PER_OWNER``; one without (the
deployment's own) does not.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from ..core.errors import InvalidSubmission, TooManySchedules
from ..core.settings import Settings
from ..store.keys import Keys
from ..store.schedule_index import (
    REMOVE,
    SchedulePage,
    ScheduleSummary,
    fold_legacy,
    schedule_page,
    schedule_summary,
)
from ..store.schedules import PAUSE, PUT, CatchUp, ScheduleInfo, ScheduleSpec, next_due
from ..wire.skill_info import SkillInfo
from ..wire.submission import SubmitOptions, draft

T = TypeVar("T")


def spec_of(skill: str, fields: dict[str, Any]) -> ScheduleSpec:
    try:
        return ScheduleSpec(skill=skill, **fields)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'schedule'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidSubmission(skill, f"invalid schedule: {detail}") from None


class AsyncScheduleMethods:
    """The schedule calls of :class:`~worker.client.AsyncSkillClient`."""

    settings: Settings
    keys: Keys

    @property
    def redis(self) -> Redis:  # pragma: no cover - the client provides it
        raise NotImplementedError

    async def skill(self, name: str) -> SkillInfo:  # pragma: no cover - the client's
        raise NotImplementedError

    async def schedule(
        self,
        name: str,
        skill: str,
        args: dict[str, Any] | None = None,
        *,
        every: float | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        catch_up: CatchUp = "one",
        priority: int | None = None,
        auth: dict[str, Any] | BaseModel | None = None,
        owner: str | None = None,
    ) -> ScheduleInfo:
        """Create or replace the schedule ``name``: ``skill`` with ``args`` every
        ``every`` seconds, or on ``cron`` in ``timezone``. Any live worker fires
        it, one job per due time; ``catch_up`` says what runs for due times
        missed while no worker was up (``one``: the latest, ``all``, ``none``).
        The args are checked as a submit would check them."""
        claims = auth.model_dump() if isinstance(auth, BaseModel) else auth
        now = time.time()
        spec = spec_of(
            skill,
            {
                "name": name,
                "args": args or {},
                "every": every,
                "cron": cron,
                "timezone": timezone,
                "queue": queue,
                "catch_up": catch_up,
                "priority": priority,
                "auth": claims,
                "owner": owner,
                "anchor": now,
            },
        )
        info = await self.skill(skill)
        options = SubmitOptions(skill, dict(spec.args), auth=claims, queue=queue, priority=priority)
        draft(self.settings, self.keys, info, options)  # what a fire would refuse, refused now
        following = next_due(spec, now)  # refuses a cron that never fires
        keys = [self.keys.schedules_due, self.keys.schedule(name), self.keys.schedule_index]
        if owner is not None:
            keys.append(self.keys.schedule_owner(owner))
            await fold_legacy(self.redis, self.keys)  # the cap counts the old ones too
        most = self.settings.max_schedules_per_owner
        put = await self.redis.register_script(PUT)(
            keys=keys, args=[name, spec.model_dump_json(), repr(following), "", most]
        )
        if int(put) < 0:
            raise TooManySchedules(most)
        await self.redis.publish(self.keys.schedules_changed, repr(following))
        paused = await self.redis.hget(self.keys.schedule(name), "paused") == "1"
        return ScheduleInfo(spec=spec, paused=paused, next_run_at=None if paused else following)

    async def schedules(
        self, *, owner: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> SchedulePage:
        """Schedules by name (``owner``: only that owner's), each with when it
        runs next and what it ran last: a list of at most ``limit``, whose
        ``cursor`` (None on the last page) is passed back for the next one.
        O(page), however many schedules there are."""
        return await schedule_page(self.redis, self.keys, owner=owner, limit=limit, cursor=cursor)

    async def schedule_summary(self) -> ScheduleSummary:
        """How many schedules there are (and paused), and the next few to fire."""
        return await schedule_summary(self.redis, self.keys)

    async def schedule_info(self, name: str) -> ScheduleInfo | None:
        """One schedule by its name, or None: one read, whatever else is scheduled."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.schedule(name)))
        return ScheduleInfo.from_hash(raw) if raw.get("spec") else None

    async def unschedule(self, name: str) -> bool:
        """Remove a schedule; False if there was none. Jobs it made are not touched."""
        keys = self.keys
        deleted = await self.redis.register_script(REMOVE)(
            keys=[
                keys.schedules_due,
                keys.schedule(name),
                keys.schedule_index,
                keys.schedule_names,
            ],
            args=[name],
        )
        return bool(deleted)

    async def pause_schedule(self, name: str) -> bool:
        """Stop firing a schedule until it is resumed; False if there is none."""
        return await self._pause(name, paused=True)

    async def resume_schedule(self, name: str) -> bool:
        """Fire a paused schedule again, from its next due time after now (times
        due while it was paused are not run)."""
        return await self._pause(name, paused=False)

    async def _pause(self, name: str, *, paused: bool) -> bool:
        raw = await self.redis.hget(self.keys.schedule(name), "spec")
        if raw is None:
            return False
        following = next_due(ScheduleSpec.stored(raw), time.time())
        done = await self.redis.register_script(PAUSE)(
            keys=[self.keys.schedules_due, self.keys.schedule(name)],
            args=[name, "1" if paused else "0", repr(following)],
        )
        if done and not paused:
            await self.redis.publish(self.keys.schedules_changed, repr(following))
        return bool(done)


class ScheduleMethods:
    """The same calls on :class:`~worker.client.SkillClient`, blocking."""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:  # pragma: no cover - the client's
        raise NotImplementedError

    def _scheduler(self) -> AsyncScheduleMethods:  # pragma: no cover - the client's
        raise NotImplementedError

    def schedule(
        self,
        name: str,
        skill: str,
        args: dict[str, Any] | None = None,
        *,
        every: float | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        catch_up: CatchUp = "one",
        priority: int | None = None,
        auth: dict[str, Any] | BaseModel | None = None,
        owner: str | None = None,
    ) -> ScheduleInfo:
        """See :meth:`AsyncScheduleMethods.schedule`."""
        return self._run(
            self._scheduler().schedule(
                name,
                skill,
                args,
                every=every,
                cron=cron,
                timezone=timezone,
                queue=queue,
                catch_up=catch_up,
                priority=priority,
                auth=auth,
                owner=owner,
            )
        )

    def schedules(
        self, *, owner: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> SchedulePage:
        """See :meth:`AsyncScheduleMethods.schedules`."""
        return self._run(self._scheduler().schedules(owner=owner, limit=limit, cursor=cursor))

    def schedule_summary(self) -> ScheduleSummary:
        return self._run(self._scheduler().schedule_summary())

    def schedule_info(self, name: str) -> ScheduleInfo | None:
        return self._run(self._scheduler().schedule_info(name))

    def unschedule(self, name: str) -> bool:
        return self._run(self._scheduler().unschedule(name))

    def pause_schedule(self, name: str) -> bool:
        return self._run(self._scheduler().pause_schedule(name))

    def resume_schedule(self, name: str) -> bool:
        return self._run(self._scheduler().resume_schedule(name))
