"""Clients of HTTP peers against real local HTTP servers: S3 errors (A2A calls are in
tests/capabilities/test_a2a_client.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.embedded import WorkerProcess, free_port


def serve(respond: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            respond(self)

        do_PUT = do_POST = do_HEAD = do_GET

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    handler.requests_seen.append(handler.rfile.read(length))  # type: ignore[attr-defined]
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def failing_s3() -> Iterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.requests_seen = seen  # type: ignore[attr-defined]
        reply(handler, 503, body, "application/xml")

    yield from ((url, seen) for url in serve(respond))


def test_s3_errors_are_retried_then_fail_the_job(
    failing_s3: tuple[str, list[bytes]],
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
) -> None:
    url, seen = failing_s3
    worker = start_worker(pool="threads", queues="s3-503", env={"SKILLQ_S3_ENDPOINT_URL": url})
    job_id = client.submit("report", {}, queue="s3-503")
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=120)
    assert caught.value.error_type == "ArtifactStoreUnavailable"
    assert "503" in caught.value.error_message
    assert len(seen) >= 2, "botocore should have retried"
    follow_up = client.submit("echo", {"message": "serving"}, queue="s3-503")
    assert client.result(follow_up, timeout=30) == {"message": "serving"}
    worker.stop()
