"""What the deployment did lately, from the per-minute rollups the scripts keep
(:mod:`worker.store.rollups`): ``client.stats(seconds)`` gives each minute's
jobs ended by outcome, run-time percentiles and queue depths, and the totals.
Mixed into both clients, as the answer and schedule calls are."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis

from ..core.errors import InvalidArgs
from ..store.keys import ROLLUP_TTL, Keys
from ..store.rollups import Minute, merged, minute_range, read_minutes

T = TypeVar("T")


@dataclass(frozen=True)
class Stats:
    """The rollups of a window of minutes, oldest first, and their totals."""

    minutes: list[Minute]

    @property
    def totals(self) -> dict[str, Any]:
        return merged(self.minutes)

    def as_dict(self) -> dict[str, Any]:
        return {"minutes": [m.as_dict() for m in self.minutes], **self.totals}


def checked_window(seconds: float) -> float:
    if not isinstance(seconds, int | float) or not 60 <= seconds <= ROLLUP_TTL:
        raise InvalidArgs("stats", f"the window is 60 to {ROLLUP_TTL} seconds, not {seconds!r}")
    return float(seconds)


class AsyncStatsMethods:
    """``stats`` on :class:`~worker.client.AsyncSkillClient`."""

    keys: Keys

    @property
    def redis(self) -> Redis:  # pragma: no cover - the client provides it
        raise NotImplementedError

    async def stats(self, seconds: float = 3600) -> Stats:
        """The last ``seconds`` (60 s to a day and an hour), a minute at a time:
        jobs ended by outcome, run-time percentiles, each queue's depth."""
        window = minute_range(checked_window(seconds))
        return Stats(await read_minutes(self.redis, self.keys, window))


class StatsMethods:
    """The same on :class:`~worker.client.SkillClient`, blocking."""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:  # pragma: no cover - the client's
        raise NotImplementedError

    def _answerer(self) -> AsyncStatsMethods:  # pragma: no cover - the client's
        raise NotImplementedError

    def stats(self, seconds: float = 3600) -> Stats:
        """See :meth:`AsyncStatsMethods.stats`."""
        return self._run(self._answerer().stats(seconds))
