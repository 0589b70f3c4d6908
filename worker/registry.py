"""Which skills running workers serve, published to Redis.

Each worker's main process writes ``<prefix>:worker:<hostname>`` when it is
ready and refreshes it on a heartbeat; the key expires when the worker is
gone, so clients only see skills that something can run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from .keys import Keys
from .skills import SkillSet

log = logging.getLogger(__name__)


class WorkerAnnouncer:
    """Keeps one worker's registry entry alive until :meth:`stop`."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        hostname: str,
        skills: SkillSet,
        queues: list[str],
        interval: float,
    ) -> None:
        self._client = client
        self._key = keys.worker(hostname)
        self._interval = interval
        self._entry = json.dumps(
            {
                "hostname": hostname,
                "pid": os.getpid(),
                "started_at": time.time(),
                "queues": queues,
                "skills": [skills[name].describe() for name in sorted(skills)],
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skillq-heartbeat", daemon=True)

    def start(self) -> None:
        self._publish()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._client.delete(self._key)
        except redis.RedisError as exc:
            log.debug("cannot remove registry entry %s: %s", self._key, exc)

    def _publish(self) -> None:
        self._client.set(self._key, self._entry, ex=max(1, int(self._interval * 3)))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._publish()
            except redis.RedisError as exc:
                log.warning("heartbeat to Redis failed: %s", exc)


def read_workers(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every live worker's registry entry."""
    names = sorted(client.scan_iter(match=keys.worker_pattern, count=500))
    if not names:
        return []
    values = client.mget(names)
    return [json.loads(value) for value in values if value]


async def read_workers_async(client: AsyncRedis, keys: Keys) -> list[dict[str, Any]]:
    names = sorted([name async for name in client.scan_iter(match=keys.worker_pattern, count=500)])
    if not names:
        return []
    values = await client.mget(names)
    return [json.loads(value) for value in values if value]
