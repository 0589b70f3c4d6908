"""``skillq exporter``: the deployment-wide figures over HTTP, for autoscalers
and dashboards (each worker serves its own job metrics on ``SKILLQ_METRICS_PORT``).

``/metrics`` is Prometheus text, written by prometheus_client from a collector
that reads Redis at scrape time (per queue: backlog, queued, taken; jobs
running; dead letters), O(queues) per scrape; ``/backlog`` is JSON
(``{"queues": {...}, "total": n}``) for KEDA's metrics-api scaler;
``/healthz`` answers 200 while Redis does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import redis

from ..client.backlog import QueueDepth, queue_depths
from ..store.keys import Keys

log = logging.getLogger(__name__)


class DeploymentCollector:
    """The figures of one scrape, as prometheus_client metric families."""

    def __init__(
        self, depths: list[QueueDepth], records: redis.Redis, broker: redis.Redis, keys: Keys
    ) -> None:
        self._depths = depths
        self._records = records
        self._broker = broker
        self._keys = keys

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        per_queue = (
            (
                "skillq_queue_backlog",
                "Jobs queued or taken (prefetched or running) per queue.",
                [d.backlog for d in self._depths],
            ),
            (
                "skillq_queue_queued",
                "Jobs waiting in the queue's Redis lists (every priority).",
                [d.queued for d in self._depths],
            ),
            (
                "skillq_queue_taken",
                "Jobs a worker holds (prefetched or running).",
                [d.taken for d in self._depths],
            ),
        )
        for name, text, figures in per_queue:
            family = GaugeMetricFamily(name, text, labels=["queue"])
            for depth, figure in zip(self._depths, figures, strict=True):
                family.add_metric([depth.queue], figure)
            yield family
        running = GaugeMetricFamily(
            "skillq_running_jobs", "Jobs running now across the deployment."
        )
        running.add_metric([], int(self._records.zcard(self._keys.running_index())))
        yield running
        dead = GaugeMetricFamily(
            "skillq_dead_letters", "Queue items refused as unreadable (kept, newest first)."
        )
        dead.add_metric([], int(self._broker.llen(self._keys.dead_letters)))
        yield dead


def exposition(
    depths: list[QueueDepth], records: redis.Redis, broker: redis.Redis, keys: Keys
) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(depths, records, broker, keys))
    return generate_latest(registry)


def make_server(
    host: str,
    port: int,
    client: redis.Redis,
    records: redis.Redis,
    keys: Keys,
    queues: list[str],
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            wanted = parse_qs(url.query).get("queue", []) or queues
            try:
                if url.path == "/metrics":
                    depths = queue_depths(client, records, keys, wanted)
                    body = exposition(depths, records, client, keys)
                    self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
                elif url.path == "/backlog":
                    depths = queue_depths(client, records, keys, wanted)
                    payload = {
                        "queues": {d.queue: d.as_dict() for d in depths},
                        "total": sum(d.backlog for d in depths),
                    }
                    self._send(200, json.dumps(payload).encode(), "application/json")
                elif url.path == "/healthz":
                    client.ping()
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")
            except redis.RedisError as exc:
                self._send(503, f"redis unavailable: {exc}\n".encode(), "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)
