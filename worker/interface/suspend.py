"""Waits that free the worker: ``await ctx.sleep(seconds)``.

A durable sleep ends the attempt instead of holding a pool slot: the handler
raises :class:`Suspended` (a ``BaseException``, so ``except Exception`` in a
handler does not swallow it), the worker records the job ``queued`` with the
time it wakes, parks its message in Redis until then
(:mod:`worker.runtime.delays`) and takes other work. The job then runs again
from the top: finished steps return their stored results, and the same
``ctx.sleep`` call, having its wake time in the record, returns at once.
Sleeps are told apart by the order they are called in, so the code before a
sleep must make the same calls each time (put what varies in steps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

MAX_SLEEP = 10 * 366 * 86400.0  # seconds, as long as a delay may be


class Suspended(BaseException):
    """The attempt ends here; the job runs again at ``until`` (Unix seconds)."""

    def __init__(self, until: float, state: str = "queued", detail: dict[str, Any] | None = None):
        super().__init__(until, state)
        self.until = until
        self.state = state
        self.detail = detail or {}


class Sleeps:
    """One delivery's ``ctx.sleep`` calls, numbered in the order they are made."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[str | None]],
        save: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._load, self._save = load, save
        self._count = 0

    async def sleep(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise TypeError("ctx.sleep takes a number of seconds")
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP:
            raise ValueError(f"ctx.sleep takes 0 to {MAX_SLEEP:.0f} seconds, not {seconds!r}")
        self._count += 1
        key = str(self._count)
        stored = await self._load(key)
        if stored is None:
            wake = time.time() + float(seconds)
            await self._save(key, repr(wake))
        else:
            wake = float(stored)
        if time.time() >= wake:
            return
        raise Suspended(wake, "queued", {"sleep": self._count})
