"""Redis clients configured the one way every skillq process uses them.

Both ride out short Redis restarts (``SKILLQ_REDIS_RETRIES``, backoff
doubling from 50 ms to 1 s: about 6 s for 10 retries) instead of failing the
call at the first refused connection.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url as _parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from . import sentinels

# A connect that has not completed in this long will not: the host is away or
# a firewall drops the packets (the OS would wait minutes). Retries follow.
CONNECT_TIMEOUT = 5.0
# How long a command waits for a free connection of a bounded pool (``pool_size``).
POOL_WAIT = 20.0


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A pool of the primary the sentinels name on which a command waits for a free
    connection (as on :class:`BlockingConnectionPool`) instead of failing."""


def riding_out(settings: Settings, retry: type[SyncRetry] | type[Retry]) -> dict[str, Any]:
    """The connection options of every long-lived client: keepalive, a bounded
    connect, and retries with backoff through short outages."""
    return {
        "decode_responses": True,
        "socket_keepalive": True,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 30,
        "retry": retry(ExponentialBackoff(cap=1.0, base=0.05), retries=settings.redis_retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def sync_redis(settings: Settings, url: str | None = None, *, single: bool = False) -> redis.Redis:
    """The blocking client for a job's start and end (same retry policy); of
    skillq's Redis unless ``url`` names another (the result backend).

    ``single``: one connection, held (behind redis-py's lock) instead of taken
    from a pool and given back around every command, which costs a prefork
    child, running one job at a time, about a tenth of its CPU per job."""
    url = url or settings.effective_redis_url
    options = riding_out(settings, SyncRetry)
    if sentinels.is_sentinel(url):
        client: redis.Redis = sentinels.sync_client(settings, url, single=single, **options)
        return client
    return redis.Redis.from_url(url, single_connection_client=single, **options)


def async_redis(settings: Settings, url: str | None = None, *, pool_size: int = 0) -> Redis:
    """A client that rides out short Redis restarts and failovers instead of
    failing jobs; of skillq's Redis unless ``url`` names another.

    Backoff doubles from 50 ms up to 1 s, so ``SKILLQ_REDIS_RETRIES`` of 10
    waits about 6 s.

    ``pool_size``: a pool of its own of that many connections, on which a
    command waits (up to :data:`POOL_WAIT`) for a free one: what uses it can
    queue behind itself but never take, nor fail for want of, the connections
    of anything else. Otherwise redis-py's pool, which fails the 101st command
    in flight at once.
    """
    url = url or settings.effective_redis_url
    options = riding_out(settings, Retry)
    if pool_size:
        options.update(max_connections=pool_size, timeout=POOL_WAIT)
    if sentinels.is_sentinel(url):
        pool_class = BlockingSentinelPool if pool_size else SentinelConnectionPool
        client: Redis = sentinels.async_client(settings, url, pool_class=pool_class, **options)
        return client
    if pool_size:
        return Redis.from_pool(BlockingConnectionPool.from_url(url, **options))
    return Redis.from_url(url, **options)


def probe_redis(url: str, timeout: float = 2.0, *, settings: Settings | None = None) -> redis.Redis:
    """A client for a check or a command-line read: it gives up after ``timeout``
    seconds instead of retrying, so a person hears at once that Redis is away.
    A ``sentinel://`` URL needs ``settings`` (the primary's name)."""
    options: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if sentinels.is_sentinel(url):
        if settings is None:
            raise ConfigurationError(f"a Sentinel URL needs settings to be probed: {url}")
        client: redis.Redis = sentinels.sync_client(settings, url, **options)
        return client
    return redis.Redis.from_url(url, **options)


REDIS_SCHEMES = ("redis://", "rediss://")


def parse_url(url: str) -> dict[str, Any]:
    parsed: dict[str, Any] = _parse_url(url)  # type: ignore[no-untyped-call]
    return parsed


def database_beside(url: str, records: str) -> str | None:
    """Whether one of skillq's scripts on ``records`` can reach ``url``'s data:
    ``""`` when it is the same database, a database number when it is another
    database of the same server (the script ``SELECT``s it), None otherwise.
    Two Sentinel URLs naming the same sentinels reach the same primary."""
    if url == records:
        return "" if url.startswith((*REDIS_SCHEMES, sentinels.SCHEME)) else None
    if sentinels.is_sentinel(url) and sentinels.is_sentinel(records):
        try:
            theirs_s, ours_s = (
                sentinels.SentinelURL.parse(url),
                sentinels.SentinelURL.parse(records),
            )
        except ConfigurationError:
            return None
        if theirs_s.group != ours_s.group or theirs_s.password != ours_s.password:
            return None
        return "" if theirs_s.db == ours_s.db else str(theirs_s.db)
    if not url.startswith(REDIS_SCHEMES) or not records.startswith(REDIS_SCHEMES):
        return None
    try:
        theirs, ours = parse_url(url), parse_url(records)
    except ValueError:
        return None
    their_db, our_db = int(theirs.pop("db", 0) or 0), int(ours.pop("db", 0) or 0)
    if theirs != ours:
        return None
    return "" if their_db == our_db else str(their_db)


def database_number(url: str) -> int:
    """The database a Redis or Sentinel URL selects (0 when it names none)."""
    if sentinels.is_sentinel(url):
        return sentinels.SentinelURL.parse(url).db
    return int(parse_url(url).get("db", 0) or 0)
