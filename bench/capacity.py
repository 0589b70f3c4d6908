"""The capacity of one Redis for skillq (``python -m bench.capacity``).

On a machine with more cores than this one, workers can always be added
until Redis is the limit; what one Redis can carry is then fixed by what
each job and each event costs *Redis*. Measured here from Redis's own
counters (``INFO cpu``: the server's user + system CPU; ``INFO memory``:
``used_memory``) around a known load:

- **per no-op job**: Redis CPU (the client's submit and wait included) and
  the memory a finished job leaves for ``SKILLQ_JOB_RETENTION`` (record,
  stream, index entries, Celery's result meta);
- **per event**: Redis CPU and the memory each event holds in its job's
  stream (at most ``SKILLQ_STREAM_MAXLEN`` per job);
- **jobs/s end to end** with two prefork workers on this machine (workers
  and Redis share its cores, so this is a floor, not the ceiling).

The ceiling of one Redis core is 1 / (Redis CPU per job).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess

ROOT = Path(__file__).resolve().parent.parent


def redis_cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure(jobs: int, events: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="skillq-capacity-"))
    with EmbeddedRedis() as server:
        env = {
            "SKILLQ_BROKER_URL": server.url,
            "SKILLQ_ARTIFACTS_URL": (workdir / "artifacts").as_uri(),
            "SKILLQ_SKILLS": "bench.skills",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        settings = Settings(broker_url=server.url, artifacts_url=env["SKILLQ_ARTIFACTS_URL"])
        raw = redis.Redis.from_url(server.url)
        workers = [
            WorkerProcess(
                env,
                pool="prefork",
                concurrency=2,
                queues="default",
                loglevel="WARNING",
                log_path=workdir / f"worker-{uuid.uuid4().hex[:6]}.log",
                extra=["--without-heartbeat"],
            ).start()
            for _ in range(2)
        ]
        try:
            for worker in workers:
                worker.wait_ready(server.url)
            with SkillClient(settings) as client:
                warm = [client.submit("bench.noop") for _ in range(200)]
                for job in warm:
                    client.result(job, timeout=120)
                cpu0, memory0, began = redis_cpu(raw), used_memory(raw), time.perf_counter()
                batch = [client.submit("bench.noop") for _ in range(jobs)]
                for job in batch:
                    client.result(job, timeout=300)
                elapsed = time.perf_counter() - began
                job_cpu = (redis_cpu(raw) - cpu0) / jobs
                job_memory = (used_memory(raw) - memory0) / jobs

                cpu0, memory0 = redis_cpu(raw), used_memory(raw)
                chatty = client.submit("bench.paced", {"count": events, "interval": 0})
                client.result(chatty, timeout=300)
                event_cpu = (redis_cpu(raw) - cpu0) / events
                event_memory = (used_memory(raw) - memory0 - job_memory) / events
        finally:
            for worker in workers:
                worker.stop()
    return {
        "no-op jobs measured": jobs,
        "end-to-end jobs/s, 2 prefork workers -c 2 on this machine": round(jobs / elapsed, 1),
        "Redis CPU per no-op job (us)": round(job_cpu * 1e6, 1),
        "one Redis core's ceiling (no-op jobs/s)": round(1 / job_cpu) if job_cpu else None,
        "memory per finished job record, kept SKILLQ_JOB_RETENTION (bytes)": round(job_memory),
        "events measured (one job)": events,
        "Redis CPU per event (us)": round(event_cpu * 1e6, 2),
        "one Redis core's ceiling (events/s)": round(1 / event_cpu) if event_cpu else None,
        "memory per event kept in its stream (bytes)": round(event_memory, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    jobs = int(args[0]) if args else 5000
    events = int(args[1]) if len(args) > 1 else 10_000
    print(json.dumps(measure(jobs, events), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
