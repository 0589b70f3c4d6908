"""A primary, a replica and three sentinels on loopback, for failover tests
and the soak: real ``redis-server`` and ``redis-server --sentinel`` processes.

Failover is fast here (a primary is down after 1 s without an answer): the
point is to exercise skillq's clients following it, not Sentinel's tuning.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import redis

from ..core.errors import ConfigurationError
from .redis_server import EmbeddedRedis, find_redis_server, free_port, wait_for

MASTER = "skillq"
QUORUM = 2


class EmbeddedSentinel:
    """One ``redis-server --sentinel`` watching the group's primary."""

    def __init__(
        self,
        directory: Path,
        primary_port: int,
        down_after_ms: int,
        server_password: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = free_port()
        self.password = password  # the sentinel's own (requirepass)
        self.directory = directory
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    "protected-mode no",
                    f"dir {directory}",
                    f"logfile {directory / 'sentinel.log'}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} {QUORUM}",
                    f"sentinel down-after-milliseconds {MASTER} {down_after_ms}",
                    f"sentinel failover-timeout {MASTER} {max(3000, down_after_ms * 3)}",
                    f"sentinel parallel-syncs {MASTER} 1",
                    *(
                        [f"sentinel auth-pass {MASTER} {server_password}"]
                        if server_password
                        else []
                    ),
                    *(
                        [f"requirepass {password}", f"sentinel sentinel-pass {password}"]
                        if password
                        else []
                    ),
                    "",
                ]
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedSentinel:
        self.process = subprocess.Popen(
            [find_redis_server(), str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, password=self.password)
        try:

            def answers() -> bool:
                if self.process is not None and self.process.poll() is not None:
                    raise ConfigurationError(f"sentinel on port {self.port} exited at start")
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    return False

            wait_for(answers, 10, f"the sentinel on port {self.port}")
        finally:
            client.close()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, socket_timeout=2, decode_responses=True, password=self.password
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None


class SentinelGroup:
    """A primary, one replica and three sentinels, each a process of its own.

    ``url`` is the Sentinel URL every skillq setting takes; ``master`` the
    name for ``SKILLQ_SENTINEL_MASTER``. ``kill_primary`` SIGKILLs the
    current primary; ``wait_failover`` waits until the sentinels name another.
    """

    def __init__(
        self,
        *,
        down_after_ms: int = 1000,
        appendonly: bool = True,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        """``password``: the Redis servers' (``requirepass``, and ``masterauth`` so a
        replica can sync); ``sentinel_password``: the sentinels' own."""
        self.root = Path(tempfile.mkdtemp(prefix="skillq-sentinel-"))
        self.password = password
        self.primary = EmbeddedRedis(
            appendonly=appendonly, directory=self.root / "a", password=password
        )
        self.replica = EmbeddedRedis(
            appendonly=appendonly,
            directory=self.root / "b",
            password=password,
            extra=["--replicaof", "127.0.0.1", str(self.primary.port)],
        )
        self.servers = [self.primary, self.replica]
        self.sentinels = [
            EmbeddedSentinel(
                self._dir(f"s{index}"),
                self.primary.port,
                down_after_ms,
                password,
                sentinel_password,
            )
            for index in range(3)
        ]
        self.master = MASTER

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def url(self, db: int = 0) -> str:
        return ";".join(f"sentinel://127.0.0.1:{s.port}/{db}" for s in self.sentinels)

    def start(self) -> SentinelGroup:
        self.primary.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(self._settled, 30, "the sentinels to see the replica and each other")
        return self

    def _settled(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                try:
                    state = client.sentinel_master(MASTER)
                except redis.RedisError:
                    return False
                if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                    return False
        with self.server_client(self.replica.port) as replica:
            return bool(replica.info("replication").get("master_link_status") == "up")

    def primary_port(self) -> int:
        """The port the sentinels name as primary now."""
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            with sentinel.client() as client:
                try:
                    _host, port = client.sentinel_get_master_addr_by_name(MASTER)
                except (redis.RedisError, TypeError):
                    continue
                return int(port)
        raise ConfigurationError("no sentinel names a primary")

    def server_client(self, port: int, db: int = 0) -> redis.Redis:
        """A plain client of one of the group's Redis servers."""
        return redis.Redis(
            port=port, db=db, socket_timeout=2, decode_responses=True, password=self.password
        )

    def server_on(self, port: int) -> EmbeddedRedis:
        return next(server for server in self.servers if server.port == port)

    def kill_primary(self) -> EmbeddedRedis:
        """SIGKILL the current primary; it is returned, stopped."""
        server = self.server_on(self.primary_port())
        if server.process is not None:
            server.process.kill()
            server.process.wait()
            server.process = None
        return server

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every running sentinel names a primary other than ``old_port``
        and that server answers as a primary; its port."""

        def promoted() -> int:  # 0 until promoted
            try:
                named = self.primary_port()
            except ConfigurationError:
                return 0
            if named == old_port:
                return 0
            try:
                with self.server_client(named) as client:
                    role = client.info("replication").get("role")
            except redis.RedisError:
                return 0
            return named if role == "master" else 0

        return wait_for(promoted, timeout, "the sentinels to promote the replica")

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
