"""Soak test: 1,000 jobs while workers are killed at random (``make soak``).

Three prefork workers share one queue; a killer SIGKILLs a random pool
child or a whole worker (then starts a replacement) every 1-3 s. Meanwhile
hostile items (garbage, wrong-shaped task messages) are pushed onto the
queue, some jobs run handlers that raise ``SystemExit``,
``KeyboardInterrupt`` or an unrequested ``CancelledError``, and Redis (AOF
on) is stopped for 20 s and started again. At the end every ordinary job
must be ``succeeded`` and every aborting one ``failed`` with
``handler_aborted``, each with exactly one terminal status event (its last)
and gap-free ``seq``; every hostile item must be dead-lettered. Then a
failover round: the same jobs on Redis behind Sentinel (a primary, a replica,
three sentinels), the primary SIGKILLed a third of the way through the
submits. The figures are written into docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from worker.client import SkillClient
from worker.core.errors import NotReplicated
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, SentinelGroup, WorkerProcess
from worker.store.keys import Keys

ROOT = Path(__file__).resolve().parent.parent


class Fleet:
    def __init__(
        self, env: dict[str, str], redis_url: str, logs: Path, settings: Settings | None = None
    ) -> None:
        self.env = env
        self.redis_url = redis_url
        self.settings = settings
        self.logs = logs
        self.workers: list[WorkerProcess] = []
        self.kills: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self) -> WorkerProcess:
        worker = WorkerProcess(
            self.env,
            pool="prefork",
            concurrency=2,
            queues="default",
            loglevel="WARNING",
            log_path=self.logs / f"worker-{len(self.workers) + sum(self.kills.values())}.log",
        ).start()
        worker.wait_ready(self.redis_url, settings=self.settings)
        with self.lock:
            self.workers.append(worker)
        return worker

    def kill_one(self, rng: random.Random) -> None:
        with self.lock:
            victim = rng.choice(self.workers)
        pids = victim.pids()
        if rng.random() < 0.6 and len(pids) > 1:
            self._kill(rng.choice(pids[1:]))
            self.kills["pool child"] += 1
            return
        for pid in pids:
            self._kill(pid)
        victim.kill()
        with self.lock:
            self.workers.remove(victim)
        self.kills["whole worker"] += 1
        self.add()

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=10)


def check(client: SkillClient, job_id: str, aborts: bool) -> tuple[bool, int, str]:
    status = client.status(job_id)
    events = list(client.events(job_id, follow=False))
    terminal = [e for e in events if e["kind"] == "status" and e["payload"]["state"] != "running"]
    terminal = [e for e in terminal if e["payload"]["state"] != "retrying"]
    problems = []
    expected = "failed" if aborts else "succeeded"
    if status.state != expected:
        problems.append(f"state {status.state}")
    if aborts and (status.error is None or status.error.code != "handler_aborted"):
        problems.append(f"error {status.error}")
    if len(terminal) != 1 or events[-1] is not terminal[-1]:
        problems.append(f"{len(terminal)} terminal events")
    if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
        problems.append("seq gap")
    if not aborts and len(status.artifacts) != 1:
        problems.append(f"{len(status.artifacts)} artifacts")
    return not problems, status.attempts, ", ".join(problems)


HOSTILE_ITEMS = [
    b"\x80 not a message",
    b'{"body": "W1tdLHt9XQ==", "properties": {}}',
    json.dumps(
        {
            "body": "W1tdLFsxXSx7fV0=",  # [[],[1],{}]: kwargs is not an object
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"id": "soak-hostile", "task": "bench.soak", "timelimit": "abc"},
            "properties": {"body_encoding": "base64", "delivery_tag": "x", "delivery_info": {}},
        }
    ).encode(),
]
ABORTS = ("system_exit", "keyboard_interrupt", "cancelled")


def unfinished(client: SkillClient, jobs: set[str]) -> set[str]:
    """Jobs not yet finished; all of them while Redis is away."""
    try:
        return {job for job in jobs if not client.status(job).finished}
    except redis.RedisError:
        return jobs


def update_doc(figures: dict[str, Any]) -> None:
    path = ROOT / "docs" / "RELIABILITY.md"
    start, end = "<!-- soak:start -->", "<!-- soak:end -->"
    lines = [start, "| figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in figures.items()]
    lines.append(end)
    text = path.read_text()
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(before + "\n".join(lines) + after)


def failover_round(jobs: int, rng: random.Random, workdir: Path) -> dict[str, Any]:
    """Jobs on Redis behind Sentinel while the primary is SIGKILLed a third of
    the way through the submits, and later comes back as a replica: every job
    whose submit returned must end as expected, its events gap-free."""
    with SentinelGroup() as group:
        env = {
            "SKILLQ_BROKER_URL": group.url(0),
            "SKILLQ_SENTINEL_MASTER": group.master,
            "SKILLQ_ARTIFACTS_URL": (workdir / "failover-artifacts").as_uri(),
            "SKILLQ_SKILLS": "bench.skills",
            "SKILLQ_LEASE": "5",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        settings = Settings(
            broker_url=group.url(0),
            sentinel_master=group.master,
            artifacts_url=env["SKILLQ_ARTIFACTS_URL"],
        )
        fleet = Fleet(env, group.url(0), workdir, settings)
        for _ in range(3):
            fleet.add()
        started = time.monotonic()
        submitted: list[str] = []
        refused = 0
        old_port = group.primary_port()
        old = None
        with SkillClient(settings) as client:
            for n in range(jobs):
                if n == jobs // 3:
                    old = group.kill_primary()
                try:
                    submitted.append(client.submit("bench.soak", {"millis": rng.randint(10, 100)}))
                except (redis.RedisError, NotReplicated, TimeoutError):
                    refused += 1
            group.wait_failover(old_port)
            promoted_after = round(time.monotonic() - started, 1)
            if old is not None:
                old.start()  # rejoins as a replica of the new primary
            pending = set(submitted)
            deadline = time.monotonic() + 600
            while pending and time.monotonic() < deadline:
                pending = unfinished(client, pending)
                if pending:
                    time.sleep(0.5)
            results = [check(client, job, False) for job in submitted]
        fleet.stop()
    bad = [why for ok, _, why in results if not ok]
    for why in bad[:20]:
        print(f"BAD (failover): {why}", file=sys.stderr)
    return {
        "failover: jobs submitted (primary SIGKILLed after a third)": jobs,
        "failover: submits refused with an error during the failover": refused,
        "failover: jobs whose submit returned that ended succeeded": len(submitted) - len(bad),
        "failover: jobs lost or wrong": len(bad) + len(pending),
        "failover: jobs run more than once": sum(1 for _, a, _ in results if a > 1),
        "failover: seconds from the first submit to the replica's promotion": promoted_after,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--failover-jobs", type=int, default=300)
    options = parser.parse_args(argv)
    rng = random.Random(options.seed)
    workdir = Path(tempfile.mkdtemp(prefix="skillq-soak-"))
    with EmbeddedRedis(appendonly=True) as server:
        env = {
            "SKILLQ_BROKER_URL": server.url,
            "SKILLQ_ARTIFACTS_URL": (workdir / "artifacts").as_uri(),
            "SKILLQ_SKILLS": "bench.skills",
            "SKILLQ_LEASE": "5",
            # Kills are random: a job may be unlucky more often than the default 3.
            "SKILLQ_MAX_DELIVERIES": "10",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        settings = Settings(broker_url=server.url, artifacts_url=env["SKILLQ_ARTIFACTS_URL"])
        fleet = Fleet(env, server.url, workdir)
        for _ in range(3):
            fleet.add()
        started = time.monotonic()
        stop = threading.Event()

        outage = {"seconds": 20.0, "done": False}
        raw = redis.Redis.from_url(server.url)

        def killer() -> None:
            rounds = 0
            while not stop.wait(rng.uniform(1.0, 3.0)):
                rounds += 1
                if rounds == 5 and not outage["done"]:
                    server.stop()  # a restart with AOF, held long enough to outlast retries
                    stop.wait(outage["seconds"])
                    server.start()
                    outage["done"] = True
                    continue
                with contextlib.suppress(redis.RedisError):
                    raw.lpush("default", HOSTILE_ITEMS[rounds % len(HOSTILE_ITEMS)])
                    pushed["items"] += 1
                fleet.kill_one(rng)

        pushed = {"items": 0}
        with SkillClient(settings) as client:
            kinds: dict[str, bool] = {}
            for n in range(options.jobs):
                if n % 50 == 25:
                    job = client.submit("bench.abort", {"how": ABORTS[n % len(ABORTS)]})
                    kinds[job] = True
                else:
                    job = client.submit("bench.soak", {"millis": rng.randint(10, 200)})
                    kinds[job] = False
            jobs = list(kinds)
            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            pending = set(jobs)
            deadline = time.monotonic() + 900
            while (pending or not outage["done"]) and time.monotonic() < deadline:
                pending = unfinished(client, pending)
                if pending or not outage["done"]:
                    time.sleep(0.5)
            stop.set()
            thread.join()
            elapsed = time.monotonic() - started
            results = [check(client, job, kinds[job]) for job in jobs]
        fleet.stop()
        dead = raw.llen(Keys(settings.key_prefix).dead_letters)

    bad = [(job, why) for job, (ok, _, why) in zip(jobs, results, strict=True) if not ok]
    attempts = Counter(a for _, a, _ in results)
    figures = {
        "jobs submitted": options.jobs,
        "of which raise SystemExit, KeyboardInterrupt or CancelledError": sum(kinds.values()),
        "jobs that ended as expected (succeeded, or failed handler_aborted)": options.jobs
        - len(bad),
        "jobs lost or wrong": len(bad),
        "still pending at the deadline": len(pending),
        "pool children killed (SIGKILL)": fleet.kills["pool child"],
        "whole workers killed (SIGKILL)": fleet.kills["whole worker"],
        "jobs run more than once (redelivered)": sum(n for a, n in attempts.items() if a > 1),
        "most attempts of one job": max(attempts) if attempts else 0,
        "hostile items pushed": pushed["items"],
        "hostile items dead-lettered": dead,
        "Redis outage (s, AOF on)": outage["seconds"],
        "wall time (s)": round(elapsed, 1),
        "delivery lease (s)": env["SKILLQ_LEASE"],
        "run": time.strftime("%Y-%m-%d", time.gmtime()) + f", seed {options.seed}",
    }
    failover = failover_round(options.failover_jobs, rng, workdir)
    figures.update(failover)
    print(json.dumps(figures, indent=2))
    for job, why in bad[:20]:
        print(f"BAD {job}: {why}", file=sys.stderr)
    if not options.no_doc:
        update_doc(figures)
    lost = failover["failover: jobs lost or wrong"]
    return 1 if bad or pending or lost or dead != pushed["items"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
