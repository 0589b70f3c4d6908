"""Writes that count as done only once replicas have them (Redis ``WAIT``).

Redis replicates asynchronously: a failover promotes a replica that may lack
the last writes the old primary acknowledged. A submit that returned, or a
job outcome a worker acknowledged its message for, must not be among them.
With ``SKILLQ_REDIS_MIN_REPLICAS`` = N, the script and a ``WAIT N timeout``
go in one pipeline on one connection (``WAIT`` counts the writes of its own
connection): no extra round trip, and the reply says how many replicas have
everything the script wrote.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from ..core.errors import NotReplicated
from ..core.settings import Settings
from . import sentinels

log = logging.getLogger(__name__)

# The sentinels' answer is kept this long: a failover that leaves the new
# primary without a live replica is seen within it (then submits go on
# unreplicated rather than all failing), and a replica that comes back counts.
VIEW_TTL = 2.0
_found: dict[tuple[str, str | None], tuple[float, int]] = {}


def required_replicas(settings: Settings, url: str | None = None, *, fresh: bool = False) -> int:
    """``SKILLQ_REDIS_MIN_REPLICAS``, or when unset: 1 on a Sentinel URL whose
    sentinels report a live replica of the primary now, else 0. ``fresh``:
    ask the sentinels again now (after a ``WAIT`` fell short: the replica may
    have just been promoted)."""
    known = _known(settings, url, fresh)
    if known is not None:
        return known
    return _ask(settings, url or settings.effective_redis_url)


async def required_replicas_async(
    settings: Settings, url: str | None = None, *, fresh: bool = False
) -> int:
    """:func:`required_replicas` for an event loop: the sentinels, when they must
    be asked, are asked on a thread (a sentinel that does not answer holds a
    call for up to a second)."""
    known = _known(settings, url, fresh)
    if known is not None:
        return known
    return await asyncio.to_thread(_ask, settings, url or settings.effective_redis_url)


def _known(settings: Settings, url: str | None, fresh: bool) -> int | None:
    """The answer without asking anyone, or None when the sentinels must be asked."""
    if settings.redis_min_replicas is not None:
        return settings.redis_min_replicas
    url = url or settings.effective_redis_url
    if not sentinels.is_sentinel(url):
        return 0
    cached = _found.get((url, settings.sentinel_master))
    if cached is None or fresh or time.monotonic() - cached[0] > VIEW_TTL:
        return None
    return cached[1]


def _ask(settings: Settings, url: str) -> int:
    key = (url, settings.sentinel_master)
    cached = _found.get(key)
    try:
        count = 1 if sentinels.replica_count(settings, url) > 0 else 0
    except (RedisError, OSError) as exc:
        log.warning("cannot ask the sentinels for replicas now: %s", exc)
        count = cached[1] if cached else 0
    _found[key] = (time.monotonic(), count)
    return count


def timeout_ms(settings: Settings) -> int:
    return max(1, int(settings.redis_replica_timeout * 1000))


def call_replicated(
    client: Any, script: Any, *, keys: list[str], args: list[Any], replicas: int, wait_ms: int
) -> tuple[Any, int]:
    """Run ``script`` and, when ``replicas`` > 0, ``WAIT`` for them on the same
    connection; the script's reply and how many replicas acknowledged it."""
    if replicas <= 0:
        return script(keys=keys, args=args, client=client), 0
    pipe = client.pipeline(transaction=False)
    script(keys=keys, args=args, client=pipe)
    pipe.execute_command("WAIT", replicas, wait_ms)
    reply, reached = pipe.execute()
    return reply, int(reached)


async def call_replicated_async(
    client: Any, script: Any, *, keys: list[str], args: list[Any], replicas: int, wait_ms: int
) -> tuple[Any, int]:
    """The asyncio twin of :func:`call_replicated`."""
    if replicas <= 0:
        return await script(keys=keys, args=args, client=client), 0
    async with client.pipeline(transaction=False) as pipe:
        await script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", replicas, wait_ms)
        reply, reached = await pipe.execute()
    return reply, int(reached)


def short(settings: Settings, reached: int, wanted: int) -> bool:
    """Whether a write that reached ``reached`` replicas falls short: with the
    default, only if the sentinels, asked again now, still report a replica."""
    if reached >= wanted:
        return False
    if settings.redis_min_replicas is not None:
        return True
    return reached < required_replicas(settings, fresh=True)


async def short_async(settings: Settings, reached: int, wanted: int) -> bool:
    """:func:`short` for an event loop."""
    if reached >= wanted:
        return False
    if settings.redis_min_replicas is not None:
        return True
    return reached < await required_replicas_async(settings, fresh=True)


def not_replicated(settings: Settings, job_id: str, wanted: int, reached: int) -> NotReplicated:
    return NotReplicated(
        f"the submit of job {job_id}", wanted, reached, settings.redis_replica_timeout
    )


def confirm_replicas(client: Any, settings: Settings, what: str, probe: str, reached: int) -> None:
    """Hold on until what a write stored has reached the replicas asked for.

    A job's outcome is acknowledged (its message removed) only after this:
    a failover must not promote a replica that still has the job queued
    without its outcome. Each try writes ``probe`` and ``WAIT``s on one
    connection (``WAIT`` counts that connection's writes; the probe comes
    after the outcome, so reaching it means reaching the outcome). The
    required count is read again each time: with the default, a replica that
    died with the old primary stops counting. Past the outage budget the
    shortfall is logged and the worker goes on."""
    deadline = time.monotonic() + settings.redis_outage_budget
    while True:
        wanted = required_replicas(settings)
        if reached >= wanted:
            return
        if time.monotonic() > deadline:
            log.error(
                "%s reached %d of %d Redis replica(s) within %.0f s; going on without",
                what,
                reached,
                wanted,
                settings.redis_outage_budget,
            )
            return
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(probe, "1", ex=60)
            pipe.execute_command("WAIT", wanted, timeout_ms(settings))
            _, got = pipe.execute()
            reached = int(got)
        except (RedisError, OSError) as exc:
            log.warning("waiting for Redis replicas of %s: %s", what, exc)
            time.sleep(0.2)
