"""``skillq exporter``: the backlog figure over HTTP for autoscalers.

``/metrics`` is Prometheus text; ``/backlog`` is JSON
(``{"queues": {...}, "total": n}``) for KEDA's metrics-api scaler;
``/healthz`` answers 200 while Redis does.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import redis

from ..client.backlog import prometheus, queue_depths
from ..core.keys import Keys

log = logging.getLogger(__name__)


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
                    body = prometheus(queue_depths(client, records, keys, wanted)).encode()
                    self._send(200, body, "text/plain; version=0.0.4")
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
