"""How much work each queue holds: queued plus running (the autoscaling figure).

The length of a queue's Redis list alone misleads an autoscaler: jobs a
worker has taken are no longer in the list, and kombu splits a queue into
one list per priority. The backlog of a queue is its lists plus the
jobs running from it, which skillq's ``START`` and ``FINISH`` scripts count
per queue in ``<prefix>:taken``.

Every read is O(queues): ``LLEN`` of each list and one ``HGETALL`` of the
counters. Nothing here scans the keyspace or reads message bodies, so a
scrape costs the same with a million job records in Redis as with none.
With no queue named, the queues reported are those live workers consume,
those of skills in the catalog, and those with running jobs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from ..store.keys import Keys
from ..store.registry import read_catalog, read_workers
from ..wire.celery_app import PRIORITIES
from ..wire.task_message import priority_list

PRIORITY_STEPS = tuple(PRIORITIES)


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    queued: int
    taken: int

    @property
    def backlog(self) -> int:
        return self.queued + self.taken

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "backlog": self.backlog}


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu uses for one queue (priority 0 is the bare name)."""
    return [priority_list(queue, step) for step in PRIORITY_STEPS]


def taken_per_queue(records: redis.Redis, keys: Keys) -> dict[str, int]:
    raw: Any = records.hgetall(keys.taken)
    counts: dict[str, int] = {}
    for name, value in dict(raw or {}).items():
        queue = name.decode() if isinstance(name, bytes) else str(name)
        counts[queue] = max(0, int(value))  # never negative, even after a lost record
    return counts


def known_queues(records: redis.Redis, keys: Keys) -> set[str]:
    """Queues of live workers and of catalogued skills: O(workers + skills)."""
    found = {str(q) for entry in read_workers(records, keys) for q in entry.get("queues", [])}
    found |= {str(entry.get("queue", "default")) for entry in read_catalog(records, keys).values()}
    return found


def queue_depths(
    broker: redis.Redis, records: redis.Redis, keys: Keys, queues: list[str]
) -> list[QueueDepth]:
    """Depth of each queue; with no queues given, every queue skillq knows of."""
    taken = taken_per_queue(records, keys)
    names = sorted(set(queues) if queues else known_queues(records, keys) | set(taken))
    with broker.pipeline(transaction=False) as pipe:
        for name in names:
            for key in priority_lists(name):
                pipe.llen(key)
        lengths = [int(n) for n in pipe.execute()]
    steps = len(PRIORITY_STEPS)
    return [
        QueueDepth(name, sum(lengths[i * steps : (i + 1) * steps]), taken.get(name, 0))
        for i, name in enumerate(names)
    ]
