"""``skillq dev``: a Redis and a worker for a skill author's own machine.

A newcomer's first worker needs a Redis, and the demo's private one is gone
when the demo ends. ``skillq dev`` uses the Redis at ``SKILLQ_BROKER_URL`` when
one answers there, and otherwise starts one on that address (only on this
machine), keeping its data under ``~/.skillq/dev`` with AOF, so the same URL
every other command defaults to reaches it and queued jobs survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..store.connections import probe_redis
from .stack import EmbeddedRedis

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})


@dataclass
class DevRedis:
    """The Redis ``skillq dev`` runs on: ``server`` is set when it started one itself."""

    url: str
    server: EmbeddedRedis | None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def answers(url: str, settings: Settings | None = None) -> bool:
    try:
        client = probe_redis(url, 1.0, settings=settings)
    except redis.RedisError:
        return False
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def dev_redis(url: str, directory: Path) -> DevRedis:
    """The Redis at ``url``, started here (with AOF in ``directory``) if none answers."""
    if answers(url):
        return DevRedis(url, None)
    parts = urlsplit(url)
    if parts.scheme != "redis" or (parts.hostname or "") not in LOCAL_HOSTS:
        raise ConfigurationError(
            f"no Redis answers at {url} (SKILLQ_BROKER_URL), and skillq dev starts one "
            "only on this machine: start that Redis, or point SKILLQ_BROKER_URL at "
            "redis://localhost:6379/0"
        )
    server = EmbeddedRedis(port=parts.port or 6379, appendonly=True, directory=directory)
    server.start()
    return DevRedis(url, server)
