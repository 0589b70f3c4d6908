"""What waiting for a replica costs: submit latency behind Sentinel with
``SKILLQ_REDIS_MIN_REPLICAS`` 0 and 1, in the same run on the same servers
(a primary, a replica and three sentinels on loopback), alternating rounds.

A worker must be known for the skill, so one threads worker serves a queue
nothing is submitted to; the submits themselves only record and queue.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING

import redis

from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import SentinelGroup, WorkerProcess

if TYPE_CHECKING:
    from bench.run import Bench


def submit_times(settings: Settings, count: int) -> list[float]:
    times: list[float] = []
    with SkillClient(settings) as client:
        client.submit("bench.noop", queue="unserved")  # connections and the skill cache
        for _ in range(count):
            began = time.perf_counter()
            client.submit("bench.noop", queue="unserved")
            times.append((time.perf_counter() - began) * 1000)
    return times


def replication(bench: Bench) -> None:
    from bench.run import ROOT, Row, percentile

    count = 200 if bench.smoke else 2000
    rounds = 1 if bench.smoke else 3
    with SentinelGroup() as group:
        env = {
            "SKILLQ_BROKER_URL": group.url(0),
            "SKILLQ_SENTINEL_MASTER": group.master,
            "SKILLQ_SKILLS": "bench.skills",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        base = Settings(broker_url=group.url(0), sentinel_master=group.master)
        worker = WorkerProcess(
            env,
            pool="threads",
            concurrency=1,
            queues="default",
            loglevel="WARNING",
            log_path=bench.workdir / f"replication-{uuid.uuid4().hex[:6]}.log",
        ).start()
        try:
            worker.wait_ready(group.url(0), settings=base)
            measured: dict[int, list[float]] = {0: [], 1: []}
            for _ in range(rounds):
                for replicas in (0, 1):
                    settings = base.model_copy(update={"redis_min_replicas": replicas})
                    measured[replicas] += submit_times(settings, count)
                    with redis.Redis(port=group.primary_port()) as primary:
                        primary.delete("unserved")
        finally:
            worker.stop()
    for q in (50, 99):
        bench.rows.append(
            Row(
                f"submit p{q} behind Sentinel waiting for 1 replica (baseline: not waiting) (ms)",
                "ms",
                percentile(measured[0], q),
                percentile(measured[1], q),
                "report",
                None,
                higher_is_better=False,
            )
        )
