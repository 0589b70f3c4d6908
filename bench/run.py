"""The benchmark suite: skillq against bare Celery and raw Redis/boto3, in one run.

Every figure is a ratio against a baseline measured in the same run, on the
same Redis, pool and concurrency, reported as the median of repeats with the
spread (min-max). ``--smoke`` uses small N so CI keeps the suite working.

    python -m bench.run [--smoke] [--output bench/results.json] [--markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis

from bench.replication import replication
from bench.throughput import throughput
from bench.waiting import waiting
from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, S3Server, WorkerProcess, wait_for
from worker.runtime.cancellation import CancelToken
from worker.runtime.celery_context import CeleryRunContext

ROOT = Path(__file__).resolve().parent.parent
AWS = S3Server.CREDENTIALS
BUCKET = "skillq-bench"


@dataclass
class Row:
    """One line of the report."""

    figure: str
    unit: str
    baseline: float | None
    skillq: float
    target: str
    ok: bool | None
    higher_is_better: bool = True
    spread: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.skillq / self.baseline


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Bench:
    def __init__(self, smoke: bool, redis_server: EmbeddedRedis, s3_endpoint: str) -> None:
        self.smoke = smoke
        self.redis_url = redis_server.url
        self.s3_endpoint = s3_endpoint
        self.workdir = Path(tempfile.mkdtemp(prefix="skillq-bench-"))
        self.env = {
            **AWS,
            "SKILLQ_BROKER_URL": self.redis_url,
            "SKILLQ_ARTIFACTS_URL": f"s3://{BUCKET}/bench",
            "SKILLQ_S3_ENDPOINT_URL": s3_endpoint,
            "SKILLQ_SKILLS": "bench.skills",
            "BENCH_BROKER_URL": self.redis_url,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        os.environ.update(AWS)
        os.environ["BENCH_BROKER_URL"] = self.redis_url  # read by bench.bare_app at import
        self.settings = Settings(
            broker_url=self.redis_url,
            artifacts_url=f"s3://{BUCKET}/bench",
            s3_endpoint_url=s3_endpoint,
        )
        self.raw = redis.Redis.from_url(self.redis_url)
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def worker(self, pool: str, concurrency: int, *, bare: bool = False) -> WorkerProcess:
        process = WorkerProcess(
            self.env,
            pool=pool,
            concurrency=concurrency,
            queues="bare" if bare else "default",
            loglevel="WARNING",
            log_path=self.workdir
            / f"{'bare' if bare else 'skillq'}-{pool}-{uuid.uuid4().hex[:6]}.log",
            app_module="bench.bare_app" if bare else "worker.app",
            extra=["--without-heartbeat"],
        ).start()
        if bare:
            self._wait_bare(process)
        else:
            process.wait_ready(self.redis_url)
        return process

    def _wait_bare(self, process: WorkerProcess) -> None:
        from bench.bare_app import app

        wait_for(
            lambda: app.control.ping(destination=[process.hostname], timeout=0.5),
            60,
            "the bare worker",
        )

    # --- throughput ---

    def layout_urls(self, layout: str) -> tuple[str, str, str]:
        """Broker, result backend and skillq Redis for a layout of one server."""
        base = self.redis_url.rsplit("/", 1)[0]
        if layout == "split":
            return f"{base}/0", f"{base}/1", f"{base}/2"
        return self.redis_url, self.redis_url, self.redis_url

    # --- history: cost must not grow with the jobs Redis holds ---

    def history(self) -> None:
        records = 20_000 if self.smoke else 1_000_000
        n = 100 if self.smoke else 500
        with EmbeddedRedis() as server:
            env = {**self.env, "SKILLQ_BROKER_URL": server.url}
            worker = WorkerProcess(
                env,
                pool="threads",
                concurrency=4,
                queues="default",
                loglevel="WARNING",
                log_path=self.workdir / f"history-{uuid.uuid4().hex[:6]}.log",
            ).start()
            worker.wait_ready(server.url)
            settings = self.settings.model_copy(update={"broker_url": server.url})
            try:
                with SkillClient(settings) as client:
                    empty = self._history_figures(client, n)
                    self._fill(server.url, records)
                    full = self._history_figures(client, n)
            finally:
                worker.stop()
        label = f"{records:,} job records"
        for figure, key in (("submit p99", "submit"), ("status p99", "status")):
            row = Row(
                f"{figure} with {label} / empty Redis (ms)",
                "ms",
                empty[key],
                full[key],
                "<= 1.2x",
                None,
                higher_is_better=False,
            )
            row.ok = row.ratio is not None and row.ratio <= 1.2
            self.rows.append(row)
        self.rows.append(
            Row(
                f"skill registry read with {label} (ms)",
                "ms",
                empty["registry"],
                full["registry"],
                "<= 2 ms",
                full["registry"] <= 2.0,
                higher_is_better=False,
            )
        )

    def _history_figures(self, client: SkillClient, n: int) -> dict[str, float]:
        submits, statuses, reads = [], [], []
        jobs = []
        for _ in range(n):
            began = time.perf_counter()
            jobs.append(client.submit("bench.noop"))
            submits.append((time.perf_counter() - began) * 1000)
        for job in jobs:
            client.result(job, timeout=60)
            began = time.perf_counter()
            client.status(job)
            statuses.append((time.perf_counter() - began) * 1000)
        for _ in range(50):
            began = time.perf_counter()
            client.skills()
            reads.append((time.perf_counter() - began) * 1000)
        return {
            "submit": percentile(submits, 99),
            "status": percentile(statuses, 99),
            "registry": median(reads),
        }

    @staticmethod
    def _fill(url: str, count: int) -> None:
        """``count`` finished job records, as a week of history would leave them."""
        raw = redis.Redis.from_url(url)
        now = repr(time.time())
        batch = 10_000
        for start in range(0, count, batch):
            with raw.pipeline(transaction=False) as pipe:
                for index in range(start, min(start + batch, count)):
                    pipe.hset(
                        f"skillq:job:history-{index}",
                        mapping={
                            "state": "succeeded",
                            "skill": "bench.noop",
                            "queue": "default",
                            "created_at": now,
                            "finished_at": now,
                            "attempts": 1,
                            "seq": 2,
                        },
                    )
                pipe.execute()
        raw.close()

    # --- events ---

    def event_latency(self) -> None:
        count = 300 if self.smoke else 3000
        worker = self.worker("threads", 2)
        client = SkillClient(self.settings)
        try:
            ours = self._paced_latencies(client, count)
            raw = self._raw_latencies(count)
        finally:
            client.close()
            worker.stop()
        for q in (50, 99):
            base, mine = percentile(raw, q), percentile(ours, q)
            ok = mine <= max(1.5 * base, base + 0.5)
            self.rows.append(
                Row(
                    f"event delivery latency p{q} at 1k events/s (ms)",
                    "ms",
                    base,
                    mine,
                    "<= max(1.5x, raw + 0.5 ms)",
                    ok,
                    higher_is_better=False,
                )
            )

    def _paced_latencies(self, client: SkillClient, count: int) -> list[float]:
        job_id = str(uuid.uuid4())
        latencies: list[float] = []
        pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"skillq:events:{job_id}")
        client.submit("bench.paced", {"count": count, "interval": 0.001}, job_id=job_id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)
            if message is None:
                continue
            received = time.time()
            envelope = json.loads(message["data"])
            if envelope["kind"] == "tick":
                latencies.append((received - envelope["ts"]) * 1000)
            if envelope["kind"] == "status" and envelope["payload"]["state"] != "running":
                break
        pubsub.close()
        return latencies

    def _raw_latencies(self, count: int) -> list[float]:
        channel = f"bench:raw:{uuid.uuid4()}"
        pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel)
        script = (
            "import redis, time, json, sys\n"
            "r = redis.Redis.from_url(sys.argv[1]); start = time.monotonic()\n"
            "for i in range(int(sys.argv[3])):\n"
            "    r.publish(sys.argv[2], json.dumps({'i': i, 'ts': time.time()}))\n"
            "    d = start + (i + 1) * 0.001 - time.monotonic()\n"
            "    time.sleep(d) if d > 0 else None\n"
            "r.publish(sys.argv[2], 'end')\n"
        )
        publisher = subprocess.Popen(
            [sys.executable, "-c", script, self.redis_url, channel, str(count)]
        )
        latencies: list[float] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)
            if message is None:
                continue
            received = time.time()
            if message["data"] == b"end":
                break
            latencies.append((received - json.loads(message["data"])["ts"]) * 1000)
        publisher.wait(30)
        pubsub.close()
        return latencies

    def event_rate(self) -> None:
        count = 20_000 if self.smoke else 200_000
        repeats = 1 if self.smoke else 3
        worker = self.worker("threads", 2)
        client = SkillClient(self.settings)
        ours: list[float] = []
        raw: list[float] = []
        try:
            for _ in range(repeats):
                ours.append(self._flood_rate(client, count))
                raw.append(self._raw_rate(count))
        finally:
            client.close()
            worker.stop()
        self.rows.append(
            Row(
                "events/s from one handler, delivered in order (events/s)",
                "events/s",
                median(raw),
                median(ours),
                ">= 0.6x",
                median(ours) >= 0.6 * median(raw),
                spread={"baseline": [min(raw), max(raw)], "skillq": [min(ours), max(ours)]},
            )
        )

    def _flood_rate(self, client: SkillClient, count: int) -> float:
        """Handler-side emit rate (first emit to the drained terminal event).

        A live subscriber must see every event, in order, for the run to count.
        """
        job_id = str(uuid.uuid4())
        pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"skillq:events:{job_id}")
        seqs: list[int] = []

        def listen() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=1)
                if message is None:
                    continue
                envelope = json.loads(message["data"])
                seqs.append(envelope["seq"])
                if envelope["kind"] == "status" and envelope["payload"]["state"] != "running":
                    return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        client.submit("bench.flood", {"count": count}, job_id=job_id)
        started = client.result(job_id, timeout=300)
        listener.join(300)
        pubsub.close()
        if seqs != list(range(1, count + 3)):
            raise AssertionError(f"events lost or out of order: {len(seqs)} of {count + 2}")
        finished = client.status(job_id).finished_at
        assert finished is not None
        return count / (finished - started)

    def _raw_rate(self, count: int) -> float:
        channel = f"bench:rate:{uuid.uuid4()}"
        started = time.perf_counter()
        pipe = self.raw.pipeline(transaction=False)
        for index in range(count):
            pipe.publish(channel, f'{{"text":"x","i":{index}}}')
            if index % 512 == 511:
                pipe.execute()
        pipe.execute()
        return count / (time.perf_counter() - started)

    # --- cancellation ---

    def cancel_latency(self) -> None:
        from bench.bare_app import app as bare_app

        n = 8 if self.smoke else 60
        skillq_worker = self.worker("prefork", 2)
        bare_worker = self.worker("prefork", 2, bare=True)
        client = SkillClient(self.settings)
        ours: list[float] = []
        base: list[float] = []
        try:
            for _ in range(n):
                ours.append(self._one_cancel(client))
                base.append(self._one_abort(bare_app))
        finally:
            client.close()
            skillq_worker.stop()
            bare_worker.stop()
        for q in (50, 99):
            mine = percentile(ours, q)
            self.rows.append(
                Row(
                    f"cancel latency p{q}, call -> CancelledByCaller (ms)",
                    "ms",
                    percentile(base, q),
                    mine,
                    "p99 <= 10 ms",
                    mine <= 10 if q == 99 else None,
                    higher_is_better=False,
                )
            )

    def _one_cancel(self, client: SkillClient) -> float:
        job_id = client.submit("bench.cancel_probe")
        wait_for(
            lambda: client.status(job_id).state == "running", 30, "probe start", interval=0.002
        )
        called = time.time()
        client.cancel(job_id)
        noticed = next(e for e in client.events(job_id, timeout=30) if e["kind"] == "noticed")
        return (float(noticed["payload"]["at"]) - called) * 1000

    def _one_abort(self, bare_app: Any) -> float:
        from celery.contrib.abortable import AbortableAsyncResult

        key = f"bench:aborted:{uuid.uuid4()}"
        result = bare_app.send_task("bare.abortable", args=[key], queue="bare")
        wait_for(lambda: self.raw.exists(key + ":started"), 30, "abortable start", interval=0.002)
        called = time.time()
        AbortableAsyncResult(result.id, app=bare_app).abort()
        value = wait_for(lambda: self.raw.get(key), 30, "abort noticed", interval=0.002)
        return (float(value) - called) * 1000

    def check_cost(self) -> None:
        iterations = 200_000 if self.smoke else 2_000_000

        async def empty() -> None:
            return None

        async def measure() -> tuple[float, float]:
            token = CancelToken("bench")
            ctx: CeleryRunContext[Any] = CeleryRunContext.__new__(CeleryRunContext)
            ctx._token = token
            ctx.task_id = "bench"
            start = time.perf_counter()
            for _ in range(iterations):
                await empty()
            base = (time.perf_counter() - start) / iterations
            start = time.perf_counter()
            for _ in range(iterations):
                await ctx.check_cancelled()
            mine = (time.perf_counter() - start) / iterations
            return base * 1e9, mine * 1e9

        base, mine = median_pair([asyncio.run(measure()) for _ in range(3)])
        self.rows.append(
            Row(
                "check_cancelled() cost (ns per call)",
                "ns",
                base,
                mine,
                "<= 1 us",
                mine <= 1000,
                higher_is_better=False,
            )
        )

    # --- artifacts ---

    def artifacts(self) -> None:
        from worker.store.artifacts import open_store

        sizes = [1024, 1024 * 1024] + ([] if self.smoke else [64 * 1024 * 1024])
        repeats = 3 if self.smoke else 7
        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = open_store(self.settings)
        for size in sizes:
            data = os.urandom(size)

            def raw_put(index: int, data: bytes = data) -> None:
                if len(data) > 8 * 1024 * 1024:
                    s3.upload_fileobj(io.BytesIO(data), BUCKET, f"raw/{index}/blob")
                else:
                    s3.put_object(
                        Bucket=BUCKET, Key=f"raw/{index}/blob", Body=data, ContentType="x/y"
                    )

            async def measure(data: bytes = data) -> tuple[list[float], list[float]]:
                raw_times: list[float] = []
                ours: list[float] = []
                await store.put("job-warm", "blob", data, "x/y")
                for index in range(repeats):
                    start = time.perf_counter()
                    raw_put(index)  # blocking, as a plain boto3 caller would
                    raw_times.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    await store.put(f"job-{index}", "blob", data, "x/y")
                    ours.append(time.perf_counter() - start)
                return raw_times, ours

            raw_times, ours = asyncio.run(measure())
            label = {1024: "1 KiB", 1024 * 1024: "1 MiB"}.get(size, "64 MiB")
            base_rate, our_rate = size / median(raw_times), size / median(ours)
            self.rows.append(
                Row(
                    f"artifact write {label} (MiB/s)",
                    "MiB/s",
                    base_rate / 2**20,
                    our_rate / 2**20,
                    ">= 0.95x",
                    our_rate / base_rate >= 0.95,
                )
            )

    # --- memory ---

    def memory(self) -> None:
        from bench.bare_app import app as bare_app

        skillq_worker = self.worker("prefork", 2)
        bare_worker = self.worker("prefork", 2, bare=True)
        client = SkillClient(self.settings)
        try:
            for job in [client.submit("bench.noop") for _ in range(40)]:
                client.result(job, timeout=60)
            for result in [bare_app.send_task("bare.noop", queue="bare") for _ in range(40)]:
                result.get(timeout=60)
            ours = [rss_mib(pid) for pid in skillq_worker.pids()]
            base = [rss_mib(pid) for pid in bare_worker.pids()]
        finally:
            client.close()
            skillq_worker.stop()
            bare_worker.stop()
        mine, theirs = max(ours), max(base)
        self.rows.append(
            Row(
                "worker RSS per process, max of main + 2 children (MiB)",
                "MiB",
                theirs,
                mine,
                "<= +30 MiB",
                mine - theirs <= 30,
                higher_is_better=False,
                spread={"baseline": base, "skillq": ours},
            )
        )

    # --- polling ---

    def polling(self) -> None:
        n = 50 if self.smoke else 500
        worker = self.worker("threads", 2)
        client = SkillClient(self.settings)
        status_times: list[float] = []
        result_times: list[float] = []
        try:
            for _ in range(n):
                start = time.perf_counter()
                job = client.submit("bench.noop")
                client.result(job, timeout=60)
                result_times.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                client.status(job)
                status_times.append((time.perf_counter() - start) * 1000)
        finally:
            client.close()
            worker.stop()
        for name, values in (
            ("job status poll", status_times),
            ("submit -> result wait", result_times),
        ):
            for q in (50, 99):
                self.rows.append(
                    Row(
                        f"{name} p{q} (ms)",
                        "ms",
                        None,
                        percentile(values, q),
                        "report",
                        None,
                        False,
                    )
                )


def bare_started(app: Any, task_id: str) -> bool:
    active = app.control.inspect(timeout=0.2).active() or {}
    return any(task["id"] == task_id for tasks in active.values() for task in tasks)


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return median([p[0] for p in pairs]), median([p[1] for p in pairs])


def process_cpu() -> float:
    """CPU seconds this process (every thread) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {name: version(name) for name in ("celery", "kombu", "redis", "boto3", "pydantic")}
    found["python"] = platform.python_version()
    server = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    )
    found["redis-server"] = server.stdout.split()[2].removeprefix("v=") if server.stdout else "?"
    return found


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| figure | baseline | skillq | ratio | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[row.ok]
        cells = [row.figure, fmt(row.baseline), fmt(row.skillq), ratio, row.target, met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_markdown(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = "\n".join(
        [
            start,
            f"Run: `{meta['command']}` on {meta['date']} ({meta['machine']}).",
            "",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
            "",
            table(rows),
            end,
        ]
    )
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(before + block + after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small N, for CI")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--markdown", type=Path, default=None, help="update this file's table")
    parser.add_argument("--only", default="", help="comma-separated subset of sections")
    options = parser.parse_args(argv)
    sections = [s for s in options.only.split(",") if s]

    with EmbeddedRedis() as server, S3Server() as s3_server:
        endpoint = s3_server.url
        bench = Bench(options.smoke, server, endpoint)
        plan: list[tuple[str, Callable[[], None]]] = [
            ("throughput", lambda: throughput(bench, "prefork", 2, "one")),
            ("throughput", lambda: throughput(bench, "prefork", 2, "split")),
            ("throughput", lambda: throughput(bench, "threads", 4, "one")),
            ("history", bench.history),
            ("latency", bench.event_latency),
            ("rate", bench.event_rate),
            ("cancel", bench.cancel_latency),
            ("check", bench.check_cost),
            ("artifacts", bench.artifacts),
            ("memory", bench.memory),
            ("polling", bench.polling),
            ("replication", lambda: replication(bench)),
            ("waiting", lambda: waiting(bench, 0)),
            ("waiting", lambda: waiting(bench, 20)),
        ]
        for name, step in plan:
            if sections and name not in sections:
                continue
            began = time.monotonic()
            step()
            print(f"[bench] {name} done in {time.monotonic() - began:.1f}s", file=sys.stderr)
        rows = bench.rows

    meta = {
        "command": "make bench-smoke" if options.smoke else "make bench",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "versions": versions(),
        "smoke": options.smoke,
    }
    options.output.write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}, indent=2)
    )
    if options.markdown is not None:
        update_markdown(options.markdown, rows, meta)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
