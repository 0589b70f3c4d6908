"""One round of bench.waiting for an asyncio peer, run in the peers' environment.

    python bench/peer_run.py SYSTEM REDIS_URL N SECONDS DELTAS

Starts the peer's worker (one process, concurrency N), waits for a warm-up
job, then submits N waiting jobs at once and waits for every result, as the
peer's users do; prints one JSON line: wall seconds, worker CPU seconds, peak
RSS (MiB) and Redis's peak connected clients. Self-contained: it runs where
skillq is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return found


def cpu(pid: int) -> float:
    total = 0
    for each in tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss(pid: int) -> float:
    total = 0
    for each in tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def worker_command(system: str, n: int) -> list[str]:
    bin_dir = Path(sys.executable).parent
    if system == "arq":
        return [str(bin_dir / "arq"), "bench.peer_apps.ArqSettings"]
    if system == "saq":
        return [str(bin_dir / "saq"), "bench.peer_apps.saq_settings", "--workers", "1"]
    if system == "taskiq":
        return [
            str(bin_dir / "taskiq"),
            "worker",
            "bench.peer_apps:taskiq_broker",
            "--workers",
            "1",
            "--max-async-tasks",
            str(n),
        ]
    raise SystemExit(f"unknown peer {system!r}")


async def submit_all(system: str, url: str, n: int, seconds: float, deltas: int) -> None:
    if system == "arq":
        from arq import create_pool
        from arq.connections import RedisSettings

        pool = await create_pool(RedisSettings.from_dsn(url))
        jobs = [await pool.enqueue_job("wait", seconds, deltas) for _ in range(n)]
        for job in jobs:
            assert job is not None
            await job.result(timeout=600, poll_delay=0.1)
        await pool.aclose()
    elif system == "saq":
        from saq import Queue

        queue = Queue.from_url(url)
        await queue.connect()
        await queue.map(
            "saq_wait", [{"seconds": seconds, "deltas": deltas}] * n, timeout=600, poll_interval=0.1
        )
        await queue.disconnect()
    elif system == "taskiq":
        os.environ["BENCH_PEER"] = "taskiq"
        from bench import peer_apps

        broker: Any = peer_apps._taskiq_broker()
        await broker.startup()
        sent = [await broker.find_task("wait").kiq(seconds, deltas) for _ in range(n)]
        for task in sent:
            await task.wait_result(timeout=600, check_interval=0.1)
        await broker.shutdown()


def main() -> None:
    system, url, n, seconds, deltas = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]),
        int(sys.argv[5]),
    )
    env = {
        **os.environ,
        "BENCH_PEER": system,
        "BENCH_PEER_REDIS": url,
        "BENCH_PEER_CONCURRENCY": str(n),
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        worker_command(system, n),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = redis.Redis.from_url(url)
    try:
        asyncio.run(submit_all(system, url, 5, 0.01, 0))  # warm-up: the worker serves
        peaks = {"rss": 0.0, "clients": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peaks["rss"] = max(peaks["rss"], rss(worker.pid))
                clients = int(server.info("clients")["connected_clients"])
                peaks["clients"] = max(peaks["clients"], clients)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        used = cpu(worker.pid)
        began = time.perf_counter()
        asyncio.run(submit_all(system, url, n, seconds, deltas))
        wall = time.perf_counter() - began
        used = cpu(worker.pid) - used
        stop.set()
        sampler.join()
        print(json.dumps({"wall": wall, "cpu": used, **peaks}))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        server.flushdb()


if __name__ == "__main__":
    main()
