"""How much work each queue holds: queued plus running (the autoscaling figure).

The length of a queue's Redis list alone misleads an autoscaler: jobs a
worker has taken (prefetched or running) are no longer in the list, and
kombu splits a queue into one list per priority step. skillq runs with
``acks_late``, so every taken job stays in kombu's ``unacked`` hash until it
finishes; the backlog of a queue is its lists plus its unacked entries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_KEY = "unacked"


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
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


def taken_per_queue(client: redis.Redis) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, raw in client.hscan_iter(UNACKED_KEY, count=1000):
        try:
            _message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        counts[str(routing_key)] = counts.get(str(routing_key), 0) + 1
    return counts


def queue_depths(client: redis.Redis, queues: list[str]) -> list[QueueDepth]:
    """Depth of each queue; with no queues given, every queue that has work."""
    taken = taken_per_queue(client)
    names = sorted(set(queues) if queues else set(taken) | set(_queues_with_lists(client)))
    depths = []
    for name in names:
        with client.pipeline(transaction=False) as pipe:
            for key in priority_lists(name):
                pipe.llen(key)
            queued = sum(int(n) for n in pipe.execute())
        depths.append(QueueDepth(name, queued, taken.get(name, 0)))
    return depths


def _queues_with_lists(client: redis.Redis) -> set[str]:
    """Queue names known to kombu's bindings (``_kombu.binding.<queue>`` sets)."""
    found: set[str] = set()
    for key in client.scan_iter(match="_kombu.binding.*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        found.add(name.removeprefix("_kombu.binding."))
    return {name for name in found if not name.startswith(("celery.pidbox", "celeryev"))}


def prometheus(depths: list[QueueDepth]) -> str:
    lines = [
        "# HELP skillq_queue_backlog Jobs queued or taken (prefetched or running) per queue.",
        "# TYPE skillq_queue_backlog gauge",
    ]
    lines += [f'skillq_queue_backlog{{queue="{d.queue}"}} {d.backlog}' for d in depths]
    lines += [
        "# HELP skillq_queue_queued Jobs waiting in the queue's Redis lists.",
        "# TYPE skillq_queue_queued gauge",
    ]
    lines += [f'skillq_queue_queued{{queue="{d.queue}"}} {d.queued}' for d in depths]
    lines += [
        "# HELP skillq_queue_taken Jobs a worker holds (prefetched or running).",
        "# TYPE skillq_queue_taken gauge",
    ]
    lines += [f'skillq_queue_taken{{queue="{d.queue}"}} {d.taken}' for d in depths]
    return "\n".join(lines) + "\n"
