"""Schedules from the client side: create, list, pause, resume, remove.

Mixed into both clients (:class:`AsyncScheduleMethods` into the async one,
:class:`ScheduleMethods` into the blocking one, which runs the async calls),
so each client module keeps to its own concern. Firing is the workers'
(:mod:`worker.runtime.schedules`).
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from ..core.errors import InvalidSubmission
from ..core.settings import Settings
from ..store.keys import Keys
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
        following = next_due(spec, now)
        await self.redis.register_script(PUT)(
            keys=[self.keys.schedules_due, self.keys.schedule(name), self.keys.schedule_names],
            args=[name, spec.model_dump_json(), repr(following), ""],
        )
        paused = await self.redis.hget(self.keys.schedule(name), "paused") == "1"
        return ScheduleInfo(spec=spec, paused=paused, next_run_at=None if paused else following)

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule, by name, with when it runs next and what it ran last."""
        names = sorted(str(name) for name in await self.redis.smembers(self.keys.schedule_names))
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.schedule(name))
            found = await pipe.execute()
        return [ScheduleInfo.from_hash(raw) for raw in found if raw.get("spec")]

    async def schedule_info(self, name: str) -> ScheduleInfo | None:
        """One schedule by its name, or None: one read, whatever else is scheduled."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.schedule(name)))
        return ScheduleInfo.from_hash(raw) if raw.get("spec") else None

    async def unschedule(self, name: str) -> bool:
        """Remove a schedule; False if there was none. Jobs it made are not touched."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.schedule(name))
            pipe.zrem(self.keys.schedules_due, name)
            pipe.srem(self.keys.schedule_names, name)
            deleted, _, _ = await pipe.execute()
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
        following = next_due(ScheduleSpec.model_validate_json(raw), time.time())
        done = await self.redis.register_script(PAUSE)(
            keys=[self.keys.schedules_due, self.keys.schedule(name)],
            args=[name, "1" if paused else "0", repr(following)],
        )
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

    def schedules(self) -> list[ScheduleInfo]:
        return self._run(self._scheduler().schedules())

    def schedule_info(self, name: str) -> ScheduleInfo | None:
        return self._run(self._scheduler().schedule_info(name))

    def unschedule(self, name: str) -> bool:
        return self._run(self._scheduler().unschedule(name))

    def pause_schedule(self, name: str) -> bool:
        return self._run(self._scheduler().pause_schedule(name))

    def resume_schedule(self, name: str) -> bool:
        return self._run(self._scheduler().resume_schedule(name))
