"""Which workers are alive, and which skills any worker has ever served.

Three structures, each read without touching the rest of the keyspace, so a
read costs O(live workers) or O(skills) however many jobs Redis holds:

* ``<prefix>:workers`` (hash) hostname → the worker's entry (skills, queues);
* ``<prefix>:heartbeats`` (sorted set) hostname scored by when its entry
  expires: three heartbeats after the last one, so a worker that dies drops
  out within three heartbeats, and each heartbeat prunes the dead;
* ``<prefix>:catalog`` (hash) skill → its description and ``last_seen``. The
  catalog outlives the workers, so a job for a known skill can be queued
  while no worker is up (a deploy), and a worker that lacks a skill can tell
  a job that another worker will run from one that nothing will.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from redis.asyncio import Redis as AsyncRedis

from ..interface.skills import SkillSet
from .keys import Keys
from .scriptfiles import load

log = logging.getLogger(__name__)

ANNOUNCE = load("announce")
LIVE = load("live")

HEARTBEATS_TO_EXPIRY = 3


class WorkerAnnouncer:
    """Keeps one worker's registry entry alive until :meth:`stop`."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        hostname: str,
        skills: SkillSet,
        queues: list[str],
        interval: float,
        *,
        agent: dict[str, Any] | None = None,
        pool: str = "",
        concurrency: int | None = None,
        each_beat: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._each_beat = each_beat
        self._keys = keys
        self._hostname = hostname
        self._interval = interval
        self._skills = {name: skills[name].describe() for name in sorted(skills)}
        self._entry = json.dumps(
            {
                "hostname": hostname,
                "pid": os.getpid(),
                "started_at": time.time(),
                "queues": queues,
                "pool": pool,
                "concurrency": concurrency,
                "heartbeat_interval": interval,
                "skills": list(self._skills.values()),
                "agent": agent or {"name": "skillq", "description": "", "capabilities": []},
            }
        )
        self._announce = client.register_script(ANNOUNCE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skillq-heartbeat", daemon=True)

    def start(self) -> None:
        self._publish()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hdel(self._keys.workers, self._hostname)
                pipe.zrem(self._keys.heartbeats, self._hostname)
                pipe.execute()
        except redis.RedisError as exc:
            log.debug("cannot remove the registry entry of %s: %s", self._hostname, exc)

    def _publish(self) -> None:
        now = time.time()
        catalog: list[str] = []
        for name, described in self._skills.items():
            catalog += [name, json.dumps({**described, "last_seen": now})]
        self._announce(
            keys=[self._keys.workers, self._keys.heartbeats, self._keys.catalog],
            args=[
                self._hostname,
                self._entry,
                repr(now + self._interval * HEARTBEATS_TO_EXPIRY),
                repr(now),
                *catalog,
            ],
        )

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._publish()
            except redis.RedisError as exc:
                log.warning("heartbeat to Redis failed: %s", exc)
            if self._each_beat is not None:
                self._each_beat()


def _entries(values: Any) -> list[dict[str, Any]]:
    found = [json.loads(value) for value in values or [] if value]
    return sorted(found, key=lambda entry: str(entry.get("hostname", "")))


def read_workers(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every live worker's registry entry."""
    values = client.register_script(LIVE)(
        keys=[keys.workers, keys.heartbeats], args=[repr(time.time())]
    )
    return _entries(values)


async def read_workers_async(client: AsyncRedis, keys: Keys) -> list[dict[str, Any]]:
    values = await client.register_script(LIVE)(
        keys=[keys.workers, keys.heartbeats], args=[repr(time.time())]
    )
    return _entries(values)


def live_workers(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every live worker's entry, with when its heartbeat was last renewed
    (``beat_at``) and how many jobs it runs now (``running``): O(workers + running)."""
    entries = read_workers(client, keys)
    if not entries:
        return entries
    names = [str(entry.get("hostname", "")) for entry in entries]
    expiries = cast(list[Any], client.zmscore(keys.heartbeats, names))
    running_ids = cast(list[Any], client.zrange(keys.running_index(), 0, -1))
    with client.pipeline(transaction=False) as pipe:
        for job_id in running_ids:
            pipe.hget(keys.job(job_id if isinstance(job_id, str) else job_id.decode()), "worker")
        owners = [o.decode() if isinstance(o, bytes) else o for o in pipe.execute()]
    for entry, expires in zip(entries, expiries, strict=True):
        interval = float(entry.get("heartbeat_interval") or 0)
        entry["beat_at"] = (
            None
            if expires is None or not interval
            else float(expires) - interval * HEARTBEATS_TO_EXPIRY
        )
        entry["running"] = sum(1 for owner in owners if owner == entry.get("hostname"))
    return entries


def is_alive(client: redis.Redis, keys: Keys, hostname: str) -> bool:
    expires = client.zscore(keys.heartbeats, hostname)
    return expires is not None and float(expires) > time.time()


def _catalog(raw: Any) -> dict[str, dict[str, Any]]:
    return {
        name.decode() if isinstance(name, bytes) else str(name): json.loads(value)
        for name, value in dict(raw or {}).items()
    }


def read_catalog(client: redis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Every skill a worker has served, with ``last_seen`` (Unix seconds)."""
    return _catalog(client.hgetall(keys.catalog))


async def read_catalog_async(client: AsyncRedis, keys: Keys) -> dict[str, dict[str, Any]]:
    return _catalog(await client.hgetall(keys.catalog))


def served_within(entry: dict[str, Any] | None, grace: float, now: float | None = None) -> bool:
    """Whether a catalog entry says a worker served the skill in the last ``grace`` s."""
    if not entry:
        return False
    last_seen = float(entry.get("last_seen", 0))
    return last_seen >= (time.time() if now is None else now) - grace
