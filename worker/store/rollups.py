"""Per-minute rollups for the dashboard's charts, kept in Redis so the page
needs no Prometheus.

The scripts that end a job (``FINISH``, and ``START``, ``CANCEL`` and
``end_children`` for the jobs they end) add to the hash of the minute the job
ended in, ``<prefix>:rollup:<minute>``: one count per outcome, and one per
bucket of run time, bucket ``b`` holding runs of up to ``2^(b/2)``
milliseconds (so a percentile read from them is within a factor of 1.42).
Workers add each queue's depth once a minute (``q:<queue>`` queued and
``t:<queue>`` taken, the figures of ``skillq queue-depth``). That is O(1) per
job; each hash lives :data:`~worker.store.keys.ROLLUP_TTL` seconds, so the
rollups hold at most a day and a bit of minutes whatever the traffic, and
reading an hour or a day is one pipelined ``HGETALL`` per minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.asyncio import Redis as AsyncRedis

from .keys import ROLLUP_TTL, Keys

OUTCOMES = ("succeeded", "failed", "cancelled")
PERCENTILES = (50, 95, 99)


def bucket_ms(bucket: int) -> float:
    """The longest run time (ms) bucket ``bucket`` holds."""
    return 2 ** (bucket / 2)


@dataclass
class Minute:
    """One minute's rollup: ``at`` is the minute's start (Unix seconds)."""

    at: int
    ended: dict[str, int] = field(default_factory=dict)
    durations: dict[int, int] = field(default_factory=dict)  # bucket -> runs
    queued: dict[str, int] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, minute: int, raw: Mapping[Any, Any]) -> Minute:
        found = cls(at=minute * 60)
        for name, value in raw.items():
            key = name.decode() if isinstance(name, bytes) else str(name)
            count = int(value)
            if key in OUTCOMES:
                found.ended[key] = count
            elif key.startswith("d") and key[1:].isdigit():
                found.durations[int(key[1:])] = count
            elif key.startswith("q:"):
                found.queued[key[2:]] = count
            elif key.startswith("t:"):
                found.taken[key[2:]] = count
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "ended": {outcome: self.ended.get(outcome, 0) for outcome in OUTCOMES},
            "percentiles_ms": percentiles(self.durations),
            "queued": dict(sorted(self.queued.items())),
            "taken": dict(sorted(self.taken.items())),
        }


def percentiles(
    durations: Mapping[int, int], wanted: Iterable[int] = PERCENTILES
) -> dict[str, float | None]:
    """Run-time percentiles (ms, each the upper bound of its bucket) of a set of
    bucket counts; None where there were no runs."""
    total = sum(durations.values())
    found: dict[str, float | None] = {}
    for q in wanted:
        if total == 0:
            found[f"p{q}"] = None
            continue
        rank, seen = math.ceil(total * q / 100), 0
        for bucket in sorted(durations):
            seen += durations[bucket]
            if seen >= rank:
                found[f"p{q}"] = round(bucket_ms(bucket), 3)
                break
    return found


def merged(minutes: Iterable[Minute]) -> dict[str, Any]:
    """Totals over many minutes: jobs ended by outcome, run-time percentiles."""
    ended = dict.fromkeys(OUTCOMES, 0)
    durations: dict[int, int] = {}
    for minute in minutes:
        for outcome, count in minute.ended.items():
            ended[outcome] = ended.get(outcome, 0) + count
        for bucket, count in minute.durations.items():
            durations[bucket] = durations.get(bucket, 0) + count
    return {"ended": ended, "percentiles_ms": percentiles(durations)}


def minute_range(seconds: float, now: float | None = None) -> range:
    """The minutes (Unix seconds // 60) of the last ``seconds``, oldest first."""
    last = int((time.time() if now is None else now) // 60)
    count = max(1, min(math.ceil(seconds / 60), ROLLUP_TTL // 60))
    return range(last - count + 1, last + 1)


async def read_minutes(client: AsyncRedis, keys: Keys, minutes: range) -> list[Minute]:
    """The rollups of ``minutes``: one pipelined round trip, O(minutes)."""
    async with client.pipeline(transaction=False) as pipe:
        for minute in minutes:
            pipe.hgetall(keys.rollup(minute))
        raws = cast(list[Mapping[Any, Any]], await pipe.execute())
    return [Minute.from_hash(minute, raw) for minute, raw in zip(minutes, raws, strict=True)]


def write_depths(
    client: redis.Redis, keys: Keys, depths: Iterable[tuple[str, int, int]], now: float
) -> None:
    """Add each queue's (name, queued, taken) to the rollup of the minute ``now``
    falls in; the last sample of a minute stands."""
    key = keys.rollup(int(now // 60))
    fields: dict[str, int] = {}
    for queue, queued, taken in depths:
        fields[f"q:{queue}"] = queued
        fields[f"t:{queue}"] = taken
    if not fields:
        return
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=cast(Any, fields))
        pipe.expire(key, ROLLUP_TTL)
        pipe.execute()
