"""A blocked loop is reported, naming the job that blocked it.

In the async pool every job of a process shares one event loop, so a handler
that blocks it (``time.sleep``, a synchronous HTTP call, CPU work) stalls all
of them, their cancels and their leases' guards included. That is a bug in
the handler, to report rather than hide: a thread posts a beat to the loop
every fraction of the threshold; a beat not run within the threshold means
the loop is held, and the loop thread's stack names who holds it (the job
whose ``execute`` frame is on it, and the line it is at). asyncio's own
slow-callback warning, the model, is on only in debug mode and names a
callback, not a job.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

from .metrics import Metrics

log = logging.getLogger(__name__)

RUNNER_MODULE = "worker.runtime.runner"


@dataclass(frozen=True)
class Blocker:
    """Who held the loop: the job (if one was on the stack) and where."""

    job_id: str
    skill: str
    where: str


def blocker_of(frame: FrameType | None) -> Blocker:
    """The job whose code runs in ``frame``'s stack, and the innermost line."""
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"
    while frame is not None:
        if frame.f_code.co_name == "execute" and frame.f_globals.get("__name__") == RUNNER_MODULE:
            job_id = frame.f_locals.get("job_id")
            skill = getattr(frame.f_locals.get("skill"), "name", "?")
            return Blocker(str(job_id), str(skill), where)
        frame = frame.f_back
    return Blocker("", "", where)


class LoopWatch:
    """Watches one loop from a thread of its own."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_thread: threading.Thread,
        threshold: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._loop = loop
        self._loop_thread = loop_thread
        self._threshold = threshold
        self._metrics = metrics or Metrics()
        self._posted = 0.0
        self._waiting = False
        self._blocker: Blocker | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="skillq-loop-watch", daemon=True)
        self.blocks = 0  # loops held past the threshold, since the start

    def start(self) -> LoopWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        self._waiting = False

    def _keep(self) -> None:
        while not self._stop.wait(self._threshold / 4):
            now = time.monotonic()
            if self._waiting:
                if self._blocker is None and now - self._posted >= self._threshold:
                    self._caught(now - self._posted)
                continue
            if self._blocker is not None:
                self._released(now - self._posted)
            self._waiting, self._posted = True, now
            try:
                self._loop.call_soon_threadsafe(self._beat)
            except RuntimeError:  # the loop closed: the pool is gone
                return

    def _caught(self, held: float) -> None:
        ident = self._loop_thread.ident
        frame = sys._current_frames().get(ident) if ident is not None else None
        self._blocker = blocker_of(frame)
        self.blocks += 1
        who = self._blocker
        named = f"job {who.job_id} (skill {who.skill!r})" if who.job_id else "code outside a job"
        log.warning(
            "the event loop of this process has been blocked for %.1f s by %s at %s: every "
            "other job of the process waits meanwhile. A handler must not block its loop "
            "(time.sleep, a synchronous HTTP call, CPU work): await, use asyncio.to_thread, "
            "or run the skill on a prefork worker",
            held,
            named,
            who.where,
        )

    def _released(self, held: float) -> None:
        who = self._blocker
        assert who is not None
        log.warning(
            "the event loop ran again after %.1f s held by %s",
            held,
            f"job {who.job_id}" if who.job_id else who.where,
        )
        self._metrics.loop_blocked(who.skill or "", held)
        self._blocker = None
