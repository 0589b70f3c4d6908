"""A bounded pool (``async_redis(pool_size=n)``, the server's event streams'):
commands past its size wait for a free connection instead of failing, and it
never opens more than its size; on a plain Redis and behind Sentinel."""

from __future__ import annotations

import asyncio
import uuid

import redis

from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, SentinelGroup
from worker.store.connections import async_redis

SIZE = 2
COMMANDS = 8
BLOCK_SECONDS = 0.2  # each command holds its connection this long (BLPOP's timeout)


def names_on(server: redis.Redis, name: str) -> int:
    return sum(1 for client in server.client_list() if client.get("name") == name)


def crowd(settings: Settings, url: str, observer: redis.Redis) -> tuple[list[object], int]:
    """COMMANDS blocking commands at once on a pool of SIZE: what each answered,
    and the most connections the pool held meanwhile (as Redis counts them)."""
    name = f"pool-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[object], int]:
        client = async_redis(settings, url, pool_size=SIZE)
        client.connection_pool.connection_kwargs["client_name"] = name
        most = 0

        async def one() -> object:
            try:
                return await client.blpop([f"nothing-{name}"], timeout=BLOCK_SECONDS)
            except redis.RedisError as exc:
                return type(exc).__name__

        running = asyncio.gather(*(one() for _ in range(COMMANDS)))
        while not running.done():
            most = max(most, await asyncio.to_thread(names_on, observer, name))
            await asyncio.wait([running], timeout=BLOCK_SECONDS / 4)
        answers = list(await running)
        await client.aclose()
        return answers, most

    return asyncio.run(scenario())


def test_a_bounded_pool_queues_commands_on_a_plain_redis(redis_server: EmbeddedRedis) -> None:
    """redis-py's own pool would open all COMMANDS connections (and fail the 101st)."""
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as observer:
        answers, most = crowd(Settings(broker_url=redis_server.url), redis_server.url, observer)
    assert answers == [None] * COMMANDS
    assert 0 < most <= SIZE


def test_a_bounded_pool_queues_commands_behind_sentinel() -> None:
    with SentinelGroup() as group:
        settings = Settings(broker_url=group.url(0), sentinel_master=group.master)
        with redis.Redis(port=group.primary.port, decode_responses=True) as observer:
            answers, most = crowd(settings, group.url(0), observer)
    assert answers == [None] * COMMANDS
    assert 0 < most <= SIZE
