"""Redis clients configured the one way every skillq process uses them.

Both ride out short Redis restarts (``SKILLQ_REDIS_RETRIES``, backoff
doubling from 50 ms to 1 s: about 6 s for 10 retries) instead of failing the
call at the first refused connection.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url as _parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from ..core.settings import Settings

# A connect that has not completed in this long will not: the host is away or
# a firewall drops the packets (the OS would wait minutes). Retries follow.
CONNECT_TIMEOUT = 5.0


def sync_redis(settings: Settings, url: str | None = None, *, single: bool = False) -> redis.Redis:
    """The blocking client for a job's start and end (same retry policy); of
    skillq's Redis unless ``url`` names another (the result backend).

    ``single``: one connection, held (behind redis-py's lock) instead of taken
    from a pool and given back around every command, which costs a prefork
    child, running one job at a time, about a tenth of its CPU per job."""
    return redis.Redis.from_url(
        url or settings.effective_redis_url,
        single_connection_client=single,
        decode_responses=True,
        socket_keepalive=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=SyncRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=settings.redis_retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def async_redis(url: str, retries: int) -> Redis:
    """A client that rides out short Redis restarts instead of failing jobs.

    Backoff doubles from 50 ms up to 1 s, so ``retries`` of 10 wait about 6 s.
    """
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_keepalive=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def probe_redis(url: str, timeout: float = 2.0) -> redis.Redis:
    """A client for a check or a command-line read: it gives up after ``timeout``
    seconds instead of retrying, so a person hears at once that Redis is away."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


REDIS_SCHEMES = ("redis://", "rediss://")


def parse_url(url: str) -> dict[str, Any]:
    parsed: dict[str, Any] = _parse_url(url)  # type: ignore[no-untyped-call]
    return parsed


def database_beside(url: str, records: str) -> str | None:
    """Whether one of skillq's scripts on ``records`` can reach ``url``'s data:
    ``""`` when it is the same database, a database number when it is another
    database of the same server (the script ``SELECT``s it), None otherwise."""
    if not url.startswith(REDIS_SCHEMES) or not records.startswith(REDIS_SCHEMES):
        return None
    if url == records:
        return ""
    try:
        theirs, ours = parse_url(url), parse_url(records)
    except ValueError:
        return None
    their_db, our_db = int(theirs.pop("db", 0) or 0), int(ours.pop("db", 0) or 0)
    if theirs != ours:
        return None
    return "" if their_db == our_db else str(their_db)
