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
from typing import Any

from ..core.skills import SkillSet
from .process import ProcessRuntime
from .runner import Outcome, execute, finish

log = logging.getLogger(__name__)


class InlineChildren:
    """Runs child jobs of the skills loaded in this process."""

    def __init__(self, rt: ProcessRuntime, skills: SkillSet) -> None:
        self._rt = rt
        self._skills = skills

    async def run(self, child_id: str, skill: str, kwargs: dict[str, Any], worker: str) -> None:
        rt, target = self._rt, self._skills[skill]
        token = rt.cancels.register(child_id)
        try:
            decision = await asyncio.to_thread(
                rt.records.start, child_id, target.name, worker, target.queue
            )
            if decision.action != "run":
                return  # cancelled before it started: START finalised it
            task = asyncio.ensure_future(
                execute(rt, target, child_id, (), kwargs, token, worker=worker)
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
            await asyncio.to_thread(finish, rt, child_id, worker, outcome, text)
        finally:
            rt.cancels.unregister(child_id)
