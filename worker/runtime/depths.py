"""Each worker adds its queues' depths to the dashboard's rollup once a minute
(``worker.store.rollups``), from its heartbeat thread: O(queues) a minute, so
the page charts queue depth over time without Prometheus. Every worker of a
queue writes the same figures; the last sample of a minute stands."""

from __future__ import annotations

import logging
import time

import redis

from ..client.backlog import queue_depths
from ..store.keys import Keys
from ..store.rollups import write_depths

log = logging.getLogger(__name__)


class DepthSampler:
    """Called on every heartbeat; samples at most once per minute."""

    def __init__(
        self, broker: redis.Redis, records: redis.Redis, keys: Keys, queues: list[str]
    ) -> None:
        self._broker, self._records, self._keys = broker, records, keys
        self._queues = list(queues)
        self._minute = -1

    def __call__(self) -> None:
        now = time.time()
        minute = int(now // 60)
        if minute == self._minute or not self._queues:
            return
        self._minute = minute
        try:
            depths = queue_depths(self._broker, self._records, self._keys, self._queues)
            write_depths(
                self._records, self._keys, [(d.queue, d.queued, d.taken) for d in depths], now
            )
        except redis.RedisError as exc:
            log.debug("cannot sample the queue depths now: %s", exc)
