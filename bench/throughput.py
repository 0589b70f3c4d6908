"""No-op throughput, skillq against bare Celery, quiet and with one core busy.

The two never run at the same time: each round starts the bare worker alone,
runs it, stops it, then does the same for skillq, first on a quiet machine
and then with one core kept busy by a spinning process (production machines
are busy). Bare Celery waits the way its users do (``ResultSet.join_native``);
skillq the way ours do (``submit`` each, then ``result`` of each). Beside
jobs/s each side reports what a job costs: the worker's CPU (user + system
time of its main and pool processes over the measured run) and the Redis
commands executed (``INFO commandstats``, scripts' inner calls included,
client and worker together).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from worker.client import SkillClient
from worker.embedded import WorkerProcess, wait_for

if TYPE_CHECKING:
    from bench.run import Bench

MODES = ("quiet", "one core busy")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One side's measured run."""

    rate: float  # jobs/s
    client_cpu: float  # seconds per job, the producer (this process)
    worker_cpu: float  # seconds per job, the worker's processes
    commands: float  # Redis commands per job


@dataclass
class Samples:
    by_side: dict[str, list[Sample]] = field(default_factory=lambda: {"bare": [], "skillq": []})

    def median(self, side: str, attribute: str) -> float:
        values = sorted(getattr(s, attribute) for s in self.by_side[side])
        return values[len(values) // 2]

    def spread(self, attribute: str) -> dict[str, list[float]]:
        return {
            side: [min(getattr(s, attribute) for s in got), max(getattr(s, attribute) for s in got)]
            for side, got in self.by_side.items()
        }


def worker_cpu(process: WorkerProcess) -> float:
    """CPU seconds the worker's main and pool processes have used (all threads)."""
    total = 0
    for pid in process.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def commands_run(client: redis.Redis) -> int:
    """Commands the server has executed since it started (every database)."""
    stats = client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


def process_cpu() -> float:
    times = os.times()
    return times.user + times.system


@contextmanager
def busy_core(busy: bool) -> Iterator[None]:
    """One core kept busy by a spinning process while the block runs."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def measure(process: WorkerProcess, server: redis.Redis, count: int, run: Any) -> Sample:
    began, cpu0, work0, calls0 = (
        time.perf_counter(),
        process_cpu(),
        worker_cpu(process),
        (commands_run(server)),
    )
    run(count)
    elapsed = time.perf_counter() - began
    return Sample(
        count / elapsed,
        (process_cpu() - cpu0) / count,
        (worker_cpu(process) - work0) / count,
        (commands_run(server) - calls0) / count,
    )


def throughput(bench: Bench, pool: str, concurrency: int, layout: str) -> None:
    from celery.result import ResultSet

    from bench.bare_app import make_app
    from bench.run import Row

    n = 300 if bench.smoke else 1500
    rounds = 1 if bench.smoke else 3
    modes = MODES[:1] if bench.smoke else MODES
    broker, backend, records = bench.layout_urls(layout)
    env = {
        **bench.env,
        "SKILLQ_BROKER_URL": broker,
        "SKILLQ_RESULT_BACKEND": backend,
        "SKILLQ_REDIS_URL": records,
        "BENCH_BROKER_URL": broker,
        "BENCH_BACKEND_URL": backend,
    }
    settings = bench.settings.model_copy(
        update={"broker_url": broker, "result_backend": backend, "redis_url": records}
    )
    bare_app = make_app(broker, backend)
    server = redis.Redis.from_url(records)
    samples = {mode: Samples() for mode in modes}

    def start(bare: bool) -> WorkerProcess:
        process = WorkerProcess(
            env,
            pool=pool,
            concurrency=concurrency,
            queues="bare" if bare else "default",
            loglevel="WARNING",
            log_path=bench.workdir / f"tp-{pool}-{layout}-{uuid.uuid4().hex[:6]}.log",
            app_module="bench.bare_app" if bare else "worker.app",
            extra=["--without-heartbeat"],
        ).start()
        if bare:
            wait_for(
                lambda: bare_app.control.ping(destination=[process.hostname], timeout=0.5),
                60,
                "the bare worker",
            )
        else:
            process.wait_ready(records)
        return process

    def run_bare(count: int) -> None:
        results = ResultSet([bare_app.send_task("bare.noop", queue="bare") for _ in range(count)])
        results.join_native(timeout=300)

    for _ in range(rounds):
        for mode in modes:
            with busy_core(mode != "quiet"):
                worker = start(bare=True)
                try:
                    run_bare(50)
                    samples[mode].by_side["bare"].append(measure(worker, server, n, run_bare))
                finally:
                    worker.stop()
                worker = start(bare=False)
                try:
                    with SkillClient(settings) as client:

                        def run_skillq(count: int, client: SkillClient = client) -> None:
                            jobs = [client.submit("bench.noop") for _ in range(count)]
                            for job in jobs:
                                client.result(job, timeout=300)

                        run_skillq(50)
                        sample = measure(worker, server, n, run_skillq)
                    samples[mode].by_side["skillq"].append(sample)
                finally:
                    worker.stop()
    where = {"one": "one Redis URL", "split": "broker/results/records on 3 databases"}[layout]
    target = 1.0
    for mode in modes:
        got = samples[mode]
        row = Row(
            f"no-op throughput, {pool} -c {concurrency}, {where}, {mode} (jobs/s)",
            "jobs/s",
            got.median("bare", "rate"),
            got.median("skillq", "rate"),
            f">= {target}x",
            None,
            spread=got.spread("rate"),
        )
        row.ok = row.ratio is not None and row.ratio >= target
        label = f"{pool} -c {concurrency}, {where}, {mode}"
        bench.rows += [row, cpu_row(Row, f"worker CPU per job, {label} (ms)", got, "worker_cpu")]
        if mode != "quiet":
            continue
        bench.rows.append(
            Row(
                f"Redis commands per job, {pool} -c {concurrency}, {where}",
                "commands",
                got.median("bare", "commands"),
                got.median("skillq", "commands"),
                "report",
                None,
                higher_is_better=False,
            )
        )
        if pool == "prefork":
            bench.rows.append(cpu_row(Row, f"client CPU per job, {where} (ms)", got, "client_cpu"))


def cpu_row(row_type: Any, figure: str, got: Samples, attribute: str) -> Any:
    """A CPU-per-job row in milliseconds: met when skillq spends no more than bare Celery."""
    row = row_type(
        figure,
        "ms",
        got.median("bare", attribute) * 1000,
        got.median("skillq", attribute) * 1000,
        "<= 1.0x",
        None,
        higher_is_better=False,
        spread={
            side: [round(value * 1000, 3) for value in bounds]
            for side, bounds in got.spread(attribute).items()
        },
    )
    row.ok = row.ratio is not None and row.ratio <= 1.0
    return row
