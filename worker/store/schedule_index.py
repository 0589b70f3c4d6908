"""Schedules by name, a page at a time, from the indexes their scripts keep.

``<prefix>:schedules:names`` holds every schedule's name and
``<prefix>:schedules:owner:<owner>`` each owner's, all scored 0 so a page is
one lexical range (``ZRANGEBYLEX``) and the cursor is the name a page ended
with. ``schedule_put.lua`` and ``schedule_remove.lua`` keep the hash and both
indexes in step in one script call, and the owner's index is what the
per-owner cap counts. A page, a count and the dashboard's summary cost
O(page), never O(schedules): one caller's many schedules slow no one else.

Schedules written before the indexes sit in the old set ``<prefix>:schedules``.
They are folded in lazily: every listing, count or add first runs
``schedule_fold.lua``, which costs one ``SCARD`` once the old set is empty and
otherwise moves its names over :data:`FOLD_SHARE` at a time. So no migration
step is needed on upgrade, whichever process (worker, server, client) runs
the new code first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from ..core.errors import InvalidArgs
from .keys import Keys
from .schedules import ScheduleInfo
from .scriptfiles import load

MAX_LIMIT = 1000
FOLD_SHARE = 500  # old names folded per script call, so none blocks Redis long
SHOWN_NEXT = 20  # schedules the dashboard's summary shows: those due soonest

FOLD = load("schedule_fold")
PAGE = load("schedule_page")
REMOVE = load("schedule_remove")


class SchedulePage(list[ScheduleInfo]):
    """One page of schedules by name, and ``cursor``, which goes on from its last
    (None: no more).

    A list, because ``schedules()`` returned one before it was paged: code
    that indexes, iterates, counts, compares or serialises the result keeps
    working, and reads ``cursor`` only when it wants the next page.
    """

    cursor: str | None

    def __init__(self, schedules: Iterable[ScheduleInfo] = (), cursor: str | None = None) -> None:
        super().__init__(schedules)
        self.cursor = cursor

    @property
    def schedules(self) -> list[ScheduleInfo]:
        """The page's schedules as a plain list (as the page's first form named them)."""
        return list(self)

    def __repr__(self) -> str:
        return f"SchedulePage({list.__repr__(self)}, cursor={self.cursor!r})"


class ScheduleSummary(BaseModel):
    """What the dashboard shows of the schedules: counts, and the next to fire."""

    total: int
    paused: int
    next: list[ScheduleInfo]


async def fold_legacy(redis: Redis, keys: Keys) -> None:
    """Move names written before the indexes into them (one SCARD when none are left)."""
    fold = redis.register_script(FOLD)
    while await fold(
        keys=[keys.schedule_names, keys.schedule_index],
        args=[keys.schedule(""), keys.schedule_owner(""), FOLD_SHARE],
    ):
        pass


def pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


async def schedule_page(
    redis: Redis,
    keys: Keys,
    *,
    owner: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> SchedulePage:
    """A page of schedules by name: every one, or ``owner``'s only (from the
    owner's index: the others are never read)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgs("schedules", f"limit must be 1..{MAX_LIMIT}")
    await fold_legacy(redis, keys)
    index = keys.schedule_index if owner is None else keys.schedule_owner(owner)
    found = cast(
        list[Any],
        await redis.register_script(PAGE)(
            keys=[index], args=[keys.schedule(""), cursor or "", limit]
        ),
    )
    last, more, hashes = str(found[0]), int(found[1]), found[2:]
    items = [ScheduleInfo.from_hash(raw) for raw in map(pairs, hashes) if raw.get("spec")]
    return SchedulePage(schedules=items, cursor=last if more else None)


async def owner_count(redis: Redis, keys: Keys, owner: str) -> int:
    """How many schedules ``owner`` has (what the cap counts)."""
    await fold_legacy(redis, keys)
    return int(await redis.zcard(keys.schedule_owner(owner)))


async def schedule_summary(redis: Redis, keys: Keys, shown: int = SHOWN_NEXT) -> ScheduleSummary:
    """Every schedule counted and the ``shown`` due soonest read: O(shown)."""
    await fold_legacy(redis, keys)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.schedule_index)
        pipe.zcard(keys.schedules_due)
        pipe.zrange(keys.schedules_due, 0, shown - 1)
        total, due, names = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.schedule(name))
        found = cast(list[dict[str, str]], await pipe.execute())
    return ScheduleSummary(
        total=int(total),
        paused=max(int(total) - int(due), 0),
        next=[ScheduleInfo.from_hash(raw) for raw in found if raw.get("spec")],
    )
