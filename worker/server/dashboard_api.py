"""What the dashboard reads beyond the job API: the deployment's recent
activity (``/v1/stats``, from the per-minute rollups) and its workers,
queues, dead letters and schedules (``/v1/overview``).

Both describe every caller's work, so both need the admin scope (anonymous
callers on loopback hold it); another caller gets 403. Every read is
O(minutes) or O(workers + queues + running jobs), never a keyspace scan.
Schedules are counted and only the next few to fire are read: the page
polls this every 3 s, and ``/v1/schedules`` pages through the rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Query, Request

from ..client.backlog import priority_lists, queue_depths
from ..core.errors import MissingScopes
from ..core.settings import Settings
from ..store.connections import probe_redis
from ..store.keys import ROLLUP_TTL, Keys
from ..store.registry import live_workers
from .jobs_api import Caller, Client
from .principals import Principal

DEAD_LETTERS_SHOWN = 20
SYNC_TIMEOUT = 5.0

router = APIRouter(prefix="/v1", tags=["dashboard"])


def require_admin(caller: Principal, settings: Settings) -> None:
    if not caller.admin:
        raise MissingScopes([settings.server_admin_scope])


@router.get("/stats")
async def stats(
    client: Client,
    caller: Caller,
    request: Request,
    seconds: Annotated[
        float, Query(ge=60, le=ROLLUP_TTL, allow_inf_nan=False, description="the window")
    ] = 3600,
) -> dict[str, Any]:
    """Each minute of the window, oldest first: jobs ended by outcome, run-time
    percentiles (ms) and queue depths; and the window's totals. Admin only."""
    require_admin(caller, request.app.state.settings)
    return (await client.stats(seconds)).as_dict()


class Readers:
    """Blocking clients for the reads that exist only in blocking form (queue
    depths, live workers), made on first use and run on a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._clients: tuple[redis.Redis, redis.Redis] | None = None

    def clients(self) -> tuple[redis.Redis, redis.Redis]:
        if self._clients is None:
            settings = self.settings
            self._clients = (
                probe_redis(settings.broker_url, SYNC_TIMEOUT, settings=settings),
                probe_redis(settings.effective_redis_url, SYNC_TIMEOUT, settings=settings),
            )
        return self._clients

    def overview(self) -> dict[str, Any]:
        broker, records = self.clients()
        workers = live_workers(records, self.keys)
        dead: list[dict[str, Any]] = []
        for raw in broker.lrange(self.keys.dead_letters, 0, DEAD_LETTERS_SHOWN - 1):
            item = json.loads(raw)
            item.pop("raw_base64", None)  # the message itself stays in Redis
            dead.append(item)
        return {
            "now": time.time(),
            "workers": [
                {
                    "hostname": entry.get("hostname"),
                    "agent": (entry.get("agent") or {}).get("name"),
                    "skills": [skill.get("name") for skill in entry.get("skills", [])],
                    "queues": entry.get("queues", []),
                    "pool": entry.get("pool"),
                    "concurrency": entry.get("concurrency"),
                    "running": entry.get("running", 0),
                    "started_at": entry.get("started_at"),
                    "beat_at": entry.get("beat_at"),
                }
                for entry in workers
            ],
            "queues": [
                {**d.as_dict(), "oldest_waiting_at": self.oldest_waiting(d.queue)}
                for d in queue_depths(broker, records, self.keys, [])
            ],
            "dead_letters": dead,
            "dead_letters_total": int(broker.llen(self.keys.dead_letters)),
        }

    def oldest_waiting(self, queue: str) -> float | None:
        """When the job longest in ``queue`` was created: kombu pushes on the left
        and pops on the right, so each priority list's oldest message is its last
        (O(priorities) reads, whatever the backlog)."""
        broker, records = self.clients()
        oldest: float | None = None
        for key in priority_lists(queue):
            raw = broker.lindex(key, -1)
            if raw is None:
                continue
            try:
                job_id = str(json.loads(raw)["headers"]["id"])
            except (ValueError, KeyError, TypeError):
                continue  # not a Celery message: the refusals path deals with it
            created = records.hget(self.keys.job(job_id), "created_at")
            if created is not None:
                at = float(created)
                oldest = at if oldest is None else min(oldest, at)
        return oldest


@router.get("/overview")
async def overview(client: Client, caller: Caller, request: Request) -> dict[str, Any]:
    """Live workers (agent, skills, pool, concurrency, running jobs, last
    heartbeat), each queue's backlog and oldest waiting job, the newest dead
    letters with their reasons, how many schedules there are (and paused) and
    the next ones to fire. Admin only."""
    require_admin(caller, request.app.state.settings)
    readers: Readers = request.app.state.readers
    found = await asyncio.to_thread(readers.overview)
    summary = await client.schedule_summary()
    found["schedules"] = [
        info.model_dump(mode="json", by_alias=True, exclude={"spec": {"auth"}})
        for info in summary.next
    ]
    found["schedules_total"] = summary.total
    found["schedules_paused"] = summary.paused
    return found
