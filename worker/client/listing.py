"""Listing jobs, newest first, a page at a time, from the indexes the scripts keep.

``<prefix>:jobs`` holds every job by creation time (``SUBMIT`` writes it, and
``START`` for a job a plain Celery producer queued), ``<prefix>:jobs:skill:<s>``
the same per skill, and ``<prefix>:running`` the running jobs by start time.
A page reads one range of one index and the records it names: O(page), never
a keyspace scan. A filter the index does not answer (a state other than
running, or a state with a skill) is applied to the records read, looking at
no more than ``SCAN_FACTOR`` times the page; a page may then come back short,
with a cursor to go on from.
"""

from __future__ import annotations

import math
from typing import cast

from pydantic import BaseModel
from redis.asyncio import Redis

from ..core.errors import InvalidArgs
from ..store.job_status import TERMINAL_STATES, JobStatus
from ..store.keys import Keys

STATES = frozenset({"queued", "running", "retrying", "input_required", *TERMINAL_STATES})
MAX_LIMIT = 1000
SCAN_FACTOR = 20


class JobPage(BaseModel):
    """One page of jobs; ``cursor`` goes on from the last one (None: no more)."""

    jobs: list[JobStatus]
    cursor: str | None = None


def finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)
    return value


async def list_jobs(
    redis: Redis,
    keys: Keys,
    *,
    skill: str | None = None,
    state: str | None = None,
    since: float | None = None,
    limit: int = 50,
    cursor: str | None = None,
    owner: str | None = None,
) -> JobPage:
    """A page of jobs newest first; ``owner``: only that owner's (from the owner's
    index, the other filters applied to its records)."""
    if state is not None and state not in STATES:
        raise InvalidArgs("jobs", f"state must be one of {sorted(STATES)}, not {state!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgs("jobs", f"limit must be 1..{MAX_LIMIT}")
    if owner is not None:
        index = keys.owned(owner)
    elif state == "running":
        index = keys.running_index()
    elif skill is not None:
        index = keys.skill_index(skill)
    else:
        index = keys.jobs_index()
    upper = "+inf"
    if cursor:
        try:
            upper = f"({finite(float(cursor))!r}"
        except ValueError:
            raise InvalidArgs("jobs", f"invalid cursor {cursor[:40]!r}") from None
    try:
        lower = "-inf" if since is None else repr(finite(float(since)))
    except (TypeError, ValueError):
        raise InvalidArgs("jobs", f"since must be Unix seconds, not {since!r}") from None
    found: list[JobStatus] = []
    scanned, budget, last = 0, limit * SCAN_FACTOR, None
    while len(found) < limit and scanned < budget:
        batch = cast(
            list[tuple[str, float]],
            await redis.zrevrangebyscore(
                index,
                upper,
                lower,
                start=0,
                num=min(limit - len(found), 500) * 2,
                withscores=True,
            ),
        )
        if not batch:
            last = None
            break
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in batch:
                pipe.hgetall(keys.job(job_id))
            records = cast(list[dict[str, str]], await pipe.execute())
        for (job_id, score), raw in zip(batch, records, strict=True):
            scanned += 1
            last = score
            if not raw:
                continue  # expired; the index is trimmed when jobs are submitted
            status = JobStatus.from_hash(job_id, raw)
            if (state is None or status.state == state) and (
                skill is None or status.skill == skill
            ):
                found.append(status)
                if len(found) == limit:
                    break
        upper = f"({last!r}"
    more = last is not None and (len(found) == limit or scanned >= budget)
    return JobPage(jobs=found, cursor=repr(last) if more else None)


async def owned_jobs(
    redis: Redis, keys: Keys, owner: str, *, limit: int = 50, before: float | None = None
) -> list[JobStatus]:
    """An owner's jobs, newest first: ``limit`` of them submitted before ``before``
    (a ``created_at`` from the previous page), from the owner's index that SUBMIT
    keeps. O(page), never a scan."""
    try:
        newest = "+inf" if before is None else f"({finite(float(before))!r}"
    except (TypeError, ValueError):
        raise InvalidArgs(
            "jobs", f"before must be a created_at (Unix seconds), not {before!r}"
        ) from None
    ids = cast(
        list[str],
        await redis.zrevrangebyscore(
            keys.owned(owner), newest, "-inf", start=0, num=max(1, min(limit, MAX_LIMIT))
        ),
    )
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        records = cast(list[dict[str, str]], await pipe.execute())
    return [
        JobStatus.from_hash(job_id, raw) for job_id, raw in zip(ids, records, strict=True) if raw
    ]
