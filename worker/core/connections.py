"""Redis clients configured the one way every skillq process uses them.

Both ride out short Redis restarts (``SKILLQ_REDIS_RETRIES``, backoff
doubling from 50 ms to 1 s: about 6 s for 10 retries) instead of failing the
call at the first refused connection.
"""

from __future__ import annotations

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from .settings import Settings


def sync_redis(settings: Settings) -> redis.Redis:
    """The blocking client for a job's start and end (same retry policy)."""
    return redis.Redis.from_url(
        settings.effective_redis_url,
        decode_responses=True,
        socket_keepalive=True,
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
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
