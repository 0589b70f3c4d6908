"""Many waiting jobs through one worker process: the async pool against bare Celery.

An agent job mostly waits. Each round submits N jobs that wait (``asyncio``
sleep in skillq's handler, ``time.sleep`` in bare Celery's task, the way each
is written) all at once to one worker process with ``-c N`` and times until
the last result is in: skillq's ``--pool async`` against bare Celery's
threads pool, the two never at the same time, alternating round by round.
Each side reports wall time, the worker's CPU (user + system, all threads),
its peak resident memory and the peak of Redis's connected clients (the
producer's included), sampled every 50 ms while the round runs. A second
pair streams 20 text deltas per job (skillq's ``emit_text_delta``; bare
Celery a ``PUBLISH`` per delta), where only skillq's followers can resume
from any sequence number.

The asyncio peers (arq, saq, taskiq, streaq) are to be measured beside these
in the same run, each in an environment of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from bench.throughput import worker_cpu
from worker.client import SkillClient
from worker.embedded import WorkerProcess

if TYPE_CHECKING:
    from bench.run import Bench

SIDES = ("bare", "skillq")


@dataclass
class Round:
    wall: float  # seconds, first submit to last result
    cpu: float  # worker CPU seconds over the round
    rss: float  # MiB, the worker's peak
    clients: int  # Redis's peak connected clients


@dataclass
class Rounds:
    by_side: dict[str, list[Round]] = field(default_factory=lambda: {s: [] for s in SIDES})

    def median(self, side: str, attribute: str) -> float:
        values = sorted(getattr(r, attribute) for r in self.by_side[side])
        return float(values[len(values) // 2])

    def spread(self, attribute: str) -> dict[str, list[float]]:
        return {
            side: [min(getattr(r, attribute) for r in got), max(getattr(r, attribute) for r in got)]
            for side, got in self.by_side.items()
            if got
        }


def rss_mib(process: WorkerProcess) -> float:
    """The resident memory of the worker's processes, MiB."""
    total = 0
    for pid in process.pids():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Peaks:
    """Samples the worker's memory and Redis's clients while a round runs."""

    def __init__(self, process: WorkerProcess, server: redis.Redis) -> None:
        self._process, self._server = process, server
        self.rss, self.clients = 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True)

    def _keep(self) -> None:
        while not self._stop.wait(0.05):
            self.rss = max(self.rss, rss_mib(self._process))
            self.clients = max(self.clients, int(self._server.info("clients")["connected_clients"]))

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def measured(process: WorkerProcess, server: redis.Redis, run: Callable[[], None]) -> Round:
    cpu = worker_cpu(process)
    with Peaks(process, server) as peaks:
        began = time.perf_counter()
        run()
        wall = time.perf_counter() - began
    return Round(wall, worker_cpu(process) - cpu, peaks.rss, peaks.clients)


def waiting(bench: Bench, deltas: int) -> None:
    from celery.result import ResultSet

    from bench.bare_app import make_app
    from bench.run import Row

    n = 100 if bench.smoke else 1000
    seconds = 0.5 if bench.smoke else 2.0
    rounds = 1 if bench.smoke else 3
    bare_app = make_app(bench.redis_url, bench.redis_url)
    server = redis.Redis.from_url(bench.redis_url)
    got = Rounds()

    def start(bare: bool) -> WorkerProcess:
        return bench.worker("threads" if bare else "async", n, bare=bare)

    args = {"seconds": seconds, "deltas": deltas}
    for _ in range(rounds):
        worker = start(bare=True)
        try:

            def run_bare() -> None:
                sent = [
                    bare_app.send_task("bare.wait", kwargs=args, queue="bare") for _ in range(n)
                ]
                ResultSet(sent).join_native(timeout=600)

            got.by_side["bare"].append(measured(worker, server, run_bare))
        finally:
            worker.stop()
        worker = start(bare=False)
        try:
            with SkillClient(bench.settings) as client:

                def run_skillq(client: SkillClient = client) -> None:
                    jobs = [client.submit("bench.wait", args) for _ in range(n)]
                    for job in jobs:
                        client.result(job, timeout=600)

                got.by_side["skillq"].append(measured(worker, server, run_skillq))
        finally:
            worker.stop()
    label = f"{n} jobs waiting {seconds:g} s" + (f", {deltas} text deltas each" if deltas else "")
    where = f"one process, skillq --pool async -c {n} / bare Celery threads -c {n}"
    for figure, attribute, unit in (
        ("wall time", "wall", "s"),
        ("worker CPU", "cpu", "s"),
        ("worker peak RSS", "rss", "MiB"),
        ("Redis clients at peak", "clients", "clients"),
    ):
        bench.rows.append(
            Row(
                f"{figure}, {label}, {where} ({unit})",
                unit,
                got.median("bare", attribute),
                got.median("skillq", attribute),
                "report",
                None,
                higher_is_better=False,
                spread=got.spread(attribute),
            )
        )
