"""Child jobs that run inline: a ``ctx.call`` to a skill this process serves.

The child runs as its own task on the caller's loop, so it takes no pool slot
(see :mod:`worker.capabilities.calls` for why that rules out deadlocks), but
otherwise as a job of its own: START and FINISH on its record, its own events,
artifacts and cancel token (so ``skillq cancel CHILD`` reaches it through this
process's cancel subscription like any job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from ..client.subscription import RECONNECTED, Deadline, Subscription
from ..interface.skills import Skill, SkillSet
from ..store.limits import Admission
from .endings import finish, schedule_retry, suspend
from .limiter import concurrency_key_of
from .outcome import Outcome
from .process import ProcessRuntime
from .runner import execute

log = logging.getLogger(__name__)
T = TypeVar("T")


class InlineChildren:
    """Runs child jobs of the skills loaded in this process."""

    def __init__(self, rt: ProcessRuntime, skills: SkillSet) -> None:
        self._rt = rt
        self._skills = skills

    async def run(
        self,
        child_id: str,
        skill: str,
        kwargs: dict[str, Any],
        worker: str,
        trace: Mapping[str, str] | None = None,
    ) -> None:
        """Run the child to its end, its retries included (each after its backoff,
        on this loop: a child that runs inline also retries inline, and waits
        for its skill's limits here, holding no pool slot)."""
        target = self._skills[skill]
        while True:
            admitted = await self._ended_if_cancelled(
                child_id, worker, self._admit(child_id, target, kwargs)
            )
            try:
                delay = await self._attempt(child_id, target, kwargs, worker, trace)
            finally:
                if admitted.took:
                    await asyncio.to_thread(self._rt.limiter.release, child_id)
            if delay is None:
                return
            # The backoff, sleep or question before the next attempt.
            await self._ended_if_cancelled(child_id, worker, self._until_woken(child_id, delay))

    async def _until_woken(self, child_id: str, delay: float) -> None:
        """Wait out the delay, or less when the child's state moves meanwhile
        (an answer to its ``ctx.ask`` queues it, a cancel ends it): nothing
        else would wake a child that waits in its caller's process."""
        rt = self._rt
        until = time.monotonic() + delay
        async with Subscription(rt.redis, rt.keys.events(child_id), Deadline(None)) as channel:
            waiting = await rt.redis.hget(rt.keys.job(child_id), "state")
            while (left := until - time.monotonic()) > 0:
                kind, envelope = await channel.get(min(left, 1.0))
                if envelope is not None and envelope.get("kind") == "status":
                    return
                # After a reconnect the connection may have missed the event.
                moved = kind == RECONNECTED and (
                    await rt.redis.hget(rt.keys.job(child_id), "state") != waiting
                )
                if moved:
                    return

    async def _ended_if_cancelled(self, child_id: str, worker: str, waiting: Awaitable[T]) -> T:
        """Wait outside an attempt; if the caller ends meanwhile, so does its child."""
        try:
            return await waiting
        except asyncio.CancelledError:
            outcome = Outcome("cancelled")
            await asyncio.shield(asyncio.to_thread(finish, self._rt, child_id, worker, outcome, ""))
            raise

    async def _admit(self, child_id: str, target: Skill, kwargs: dict[str, Any]) -> Admission:
        """Wait (on this loop) until the skill's limits let the child start."""
        if not target.limited:
            return Admission(True)
        key = concurrency_key_of(kwargs)
        while True:
            admitted = await asyncio.to_thread(self._rt.limiter.admit, target, child_id, key)
            if admitted.run:
                return admitted
            await asyncio.sleep(admitted.delay)  # over a limit: ask again then

    async def _attempt(
        self,
        child_id: str,
        target: Skill,
        kwargs: dict[str, Any],
        worker: str,
        trace: Mapping[str, str] | None = None,
    ) -> float | None:
        """One attempt; the seconds until the next one, or None when the child ended."""
        rt = self._rt
        token = rt.cancels.register(child_id)
        try:
            decision = await asyncio.to_thread(
                rt.records.start, child_id, target.name, worker, target.queue
            )
            if decision.action != "run":
                return None  # cancelled before it started (or ended): START finalised it
            task = asyncio.ensure_future(
                execute(
                    rt,
                    target,
                    child_id,
                    (),
                    kwargs,
                    token,
                    worker=worker,
                    queue=target.queue,
                    attempt=decision.attempts,
                    trace=trace,
                )
            )
            try:
                outcome, text = await asyncio.shield(task)
            except asyncio.CancelledError:
                # The caller's task is being cancelled: the child ends with it,
                # as a cancelled job, before the caller's cancellation goes on.
                token.cancel()
                outcome, text = Outcome("cancelled"), ""
                with contextlib.suppress(BaseException):
                    outcome, text = await asyncio.wait_for(task, rt.settings.cancel_grace + 1.0)
                await asyncio.shield(asyncio.to_thread(finish, rt, child_id, worker, outcome, text))
                raise
            if outcome.state == "suspended":  # ctx.sleep: the next attempt after it, here
                waited = await asyncio.to_thread(suspend, rt, child_id, outcome, "")
                return waited.delay if waited.state == "suspended" else None
            retried = await asyncio.to_thread(
                schedule_retry, rt, target, child_id, outcome, decision.retries
            )
            if retried is not None:
                return retried.delay if retried.state == "retrying" else None
            await asyncio.to_thread(finish, rt, child_id, worker, outcome, text)
            return None
        finally:
            rt.cancels.unregister(child_id)
