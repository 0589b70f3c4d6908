"""Worker, HTTP server and S3 server processes for the demo, tests and
benchmarks; the Redis server is in :mod:`.redis_server` (re-exported here)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..store.connections import probe_redis
from .redis_server import EmbeddedRedis, find_redis_server, free_port, wait_for

__all__ = [
    "EmbeddedRedis",
    "HttpServerProcess",
    "S3Server",
    "WorkerProcess",
    "find_redis_server",
    "free_port",
    "wait_for",
]


class WorkerProcess:
    """A real ``celery -A worker.app worker`` subprocess.

    ``wait_ready`` watches the worker's registry entry in Redis, which the
    worker writes once it consumes, instead of guessing with a sleep.
    """

    def __init__(
        self,
        env: dict[str, str],
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        hostname: str | None = None,
        queues: str | None = None,
        loglevel: str = "INFO",
        extra: list[str] | None = None,
        log_path: Path | None = None,
        app_module: str = "worker.app",
    ) -> None:
        import os
        import sys
        import uuid

        self.hostname = hostname or f"skillq-{uuid.uuid4().hex[:8]}@localhost"
        self.env = {**os.environ, **env}
        if pool == "async":  # Celery's --pool knows only its own pools, and 'custom'
            self.env["CELERY_CUSTOM_WORKER_POOL"] = "worker.runtime.async_pool:AsyncPool"
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app_module,
            "worker",
            "--pool",
            "custom" if pool == "async" else pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            self.hostname,
            "--loglevel",
            loglevel,
            "--without-mingle",
            "--without-gossip",
            *(["--queues", queues] if queues else []),
            *(extra or []),
        ]
        self.log_path = log_path or Path(
            tempfile.mkstemp(prefix="skillq-worker-", suffix=".log")[1]
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def wait_ready(
        self,
        redis_url: str,
        key_prefix: str = "skillq",
        timeout: float = 60.0,
        *,
        settings: Settings | None = None,
    ) -> None:
        from ..store.keys import Keys
        from ..store.registry import is_alive

        keys = Keys(key_prefix)
        client = probe_redis(redis_url, 5.0, settings=settings)
        deadline = time.monotonic() + timeout
        try:
            while not is_alive(client, keys, self.hostname):
                if self.process is None or self.process.poll() is not None:
                    raise ConfigurationError(f"worker exited at start:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise ConfigurationError(
                        f"worker not ready after {timeout} s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def pids(self) -> list[int]:
        """The main process and its pool children."""
        if self.process is None:
            return []
        main = self.process.pid
        children = Path(f"/proc/{main}/task/{main}/children")
        try:
            return [main, *(int(p) for p in children.read_text().split())]
        except OSError:
            return [main]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """Warm shutdown (SIGTERM): running jobs finish first."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class HttpServerProcess:
    """``python -m worker.server`` as a subprocess on a free port (tests, benchmarks);
    :meth:`start` returns once ``/healthz`` answers."""

    def __init__(self, env: dict[str, str], *, log_path: Path | None = None) -> None:
        import os

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="skillq-http-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> HttpServerProcess:
        import sys
        import urllib.error
        import urllib.request

        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "worker.server", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def healthy() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigurationError(f"HTTP server exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:  # noqa: S310
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(healthy, timeout, "the HTTP server to answer /healthz")
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> HttpServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3Server:
    """moto's standalone S3-compatible server as a subprocess (tests, benchmarks).

    Requires the ``moto[server]`` package (a development dependency).
    """

    CREDENTIALS = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> S3Server:
        import os
        import sys
        import urllib.request

        log = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.CREDENTIALS},
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):  # noqa: S310
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise ConfigurationError(f"moto server did not start on {self.url}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
