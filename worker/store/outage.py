"""Riding out a Redis outage where giving up would lose work.

redis-py's own retries cover a blip of a few seconds (``SKILLQ_REDIS_RETRIES``).
A restart with AOF, a Sentinel failover or a network partition takes longer,
and a job must not lose its outcome, run twice, or fail with a
``ConnectionError`` that has nothing to do with the handler. The steps that
write a job's state (start, events, artifacts' records, finish) therefore
keep retrying for ``SKILLQ_REDIS_OUTAGE_BUDGET`` seconds; every one of them is
idempotent per delivery, so a retry after a lost reply writes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError)
FIRST_PAUSE, MAX_PAUSE = 0.1, 2.0


class Budget:
    """How long one step may keep retrying, counted from its first failure."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self._started: float | None = None
        self._pause = FIRST_PAUSE

    def next_pause(self, exc: BaseException) -> float:
        """Seconds to wait before the next try; re-raises ``exc`` once the budget is spent."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
            log.warning(
                "Redis unreachable while %s (%s); retrying for up to %g s",
                self.what,
                exc,
                self.seconds,
            )
        left = self._started + self.seconds - now
        if left <= 0:
            log.error("Redis still unreachable after %g s while %s", self.seconds, self.what)
            raise exc
        pause = min(self._pause, left)
        self._pause = min(self._pause * 2, MAX_PAUSE)
        return pause

    def recovered(self) -> None:
        if self._started is not None:
            log.warning(
                "Redis reachable again after %.1f s; %s",
                time.monotonic() - self._started,
                self.what,
            )


def outlast(seconds: float, what: str, step: Callable[[], T]) -> T:
    """Run a blocking Redis step, retrying through an outage of up to ``seconds``."""
    budget = Budget(seconds, what)
    while True:
        try:
            value = step()
        except UNREACHABLE as exc:
            time.sleep(budget.next_pause(exc))
            continue
        budget.recovered()
        return value


async def outlast_async(seconds: float, what: str, step: Callable[[], Awaitable[T]]) -> T:
    """:func:`outlast` for a coroutine step, waiting without blocking the loop."""
    budget = Budget(seconds, what)
    while True:
        try:
            value = await step()
        except UNREACHABLE as exc:
            await asyncio.sleep(budget.next_pause(exc))
            continue
        budget.recovered()
        return value
