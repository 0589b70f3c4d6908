"""The asyncio peers' side of bench.waiting: the same waiting job in arq, saq
and taskiq, each written the way its users write one.

Imported by the peers' own workers, in an environment of their own (their
pins may clash with skillq's), so nothing here imports skillq. The broker
URL comes from ``BENCH_PEER_REDIS``; a job waits ``seconds`` and, with
``deltas``, publishes that many text deltas (a hand-made ``PUBLISH``: none of
them keeps or orders events).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

URL = os.environ.get("BENCH_PEER_REDIS", "redis://localhost:6379/0")
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "1000"))


async def _wait(publish: Any, seconds: float, deltas: int) -> None:
    if not deltas:
        await asyncio.sleep(seconds)
        return
    for index in range(deltas):
        await asyncio.sleep(seconds / deltas)
        await publish("peer:deltas", f"token {index} ")


async def wait(ctx: dict[str, Any], seconds: float, deltas: int) -> None:
    """arq's job (arq names a job by its function's qualified name)."""
    await _wait(ctx["redis"].publish, seconds, deltas)


# --- arq: `arq bench.peer_apps.ArqSettings`
def _arq_settings() -> Any:
    from arq.connections import RedisSettings

    class ArqSettings:
        functions = [wait]
        redis_settings = RedisSettings.from_dsn(URL)
        max_jobs = CONCURRENCY
        keep_result = 600

    return ArqSettings


_publisher: Any = None


async def _publish(channel: str, text: str) -> None:
    """One client for every job's deltas (saq's context has no Redis client)."""
    global _publisher
    if _publisher is None:
        from redis.asyncio import Redis

        _publisher = Redis.from_url(URL)
    await _publisher.publish(channel, text)


async def saq_wait(ctx: dict[str, Any], *, seconds: float, deltas: int) -> None:
    """saq's job (saq too names a job by its function's qualified name)."""
    await _wait(_publish, seconds, deltas)


# --- saq: `saq bench.peer_apps.saq_settings`
def _saq_settings() -> dict[str, Any]:
    from saq import Queue

    queue = Queue.from_url(URL)
    return {"queue": queue, "functions": [saq_wait], "concurrency": CONCURRENCY}


# --- taskiq: `taskiq worker bench.peer_apps:taskiq_broker --max-async-tasks N`
def _taskiq_broker() -> Any:
    from redis.asyncio import Redis
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    broker = ListQueueBroker(URL).with_result_backend(RedisAsyncResultBackend(URL))
    deltas_client = Redis.from_url(URL)

    @broker.task(task_name="wait")
    async def wait(seconds: float, deltas: int) -> None:
        await _wait(deltas_client.publish, seconds, deltas)

    return broker


_which = os.environ.get("BENCH_PEER", "")
if _which == "arq":
    ArqSettings = _arq_settings()
elif _which == "saq":
    saq_settings = _saq_settings()
elif _which == "taskiq":
    taskiq_broker = _taskiq_broker()
