"""A worker's Prometheus metrics (``SKILLQ_METRICS_PORT``), with prometheus_client.

Prefork children are separate processes, so the metrics use the client
library's multiprocess mode: every process writes its samples to memory-mapped
files in one directory, and the worker's main process serves the sum. The
directory must be known before prometheus_client is first imported (the
library picks its storage then), so :func:`prepare` runs in the worker's main
process before the pool starts, and nothing imports prometheus_client when
metrics are off: a worker without ``SKILLQ_METRICS_PORT`` pays nothing.

Deployment-wide figures (the backlog) come from ``skillq exporter``
(:mod:`worker.server.exporter`), not from each worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..core.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 3600)


class Metrics:
    """What the runtime reports; this base reports nothing (metrics off)."""

    def job_started(self, skill: str, queue: str, waited: float | None) -> None:
        pass

    def job_ended(
        self, skill: str, queue: str, outcome: str, code: str | None, seconds: float
    ) -> None:
        pass

    def job_retried(self, skill: str, queue: str) -> None:
        pass

    def events_written(self, skill: str, count: int) -> None:
        pass

    def artifact_written(self, skill: str, size: int) -> None:
        pass

    def cancel_latency(self, skill: str, seconds: float) -> None:
        pass

    def spent(self, skill: str, unit: str, amount: float) -> None:
        pass

    def loop_blocked(self, skill: str, seconds: float) -> None:
        pass


class PrometheusMetrics(Metrics):
    """The metrics, recorded into this process's multiprocess files."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        # Not in the default registry: in multiprocess mode the samples go to
        # this process's files whatever the registry, and a second runtime
        # in one process must not collide with the first's names.
        none: Any = None

        queue_labels = ("skill", "queue")
        self.started = Counter(
            "skillq_jobs_started", "Job attempts that started running.", queue_labels, registry=none
        )
        self.ended = Counter(
            "skillq_jobs_finished",
            "Job attempts that ended, by outcome (succeeded, failed, cancelled).",
            (*queue_labels, "outcome"),
            registry=none,
        )
        self.failed = Counter(
            "skillq_jobs_failed",
            "Failed jobs by error code.",
            (*queue_labels, "code"),
            registry=none,
        )
        self.retried = Counter(
            "skillq_jobs_retried",
            "Failed attempts scheduled to run again.",
            queue_labels,
            registry=none,
        )
        self.duration = Histogram(
            "skillq_job_duration_seconds",
            "Run time of an attempt, from start to outcome.",
            (*queue_labels, "outcome"),
            buckets=DURATION_BUCKETS,
            registry=none,
        )
        self.waited = Histogram(
            "skillq_job_queue_wait_seconds",
            "Time from submit to the first start.",
            queue_labels,
            buckets=WAIT_BUCKETS,
            registry=none,
        )
        self.running = Gauge(
            "skillq_jobs_running",
            "Jobs running now.",
            queue_labels,
            multiprocess_mode="livesum",
            registry=none,
        )
        self.events = Counter(
            "skillq_events_written", "Events jobs wrote.", ("skill",), registry=none
        )
        self.artifact_bytes = Counter(
            "skillq_artifact_bytes_written",
            "Bytes of artifacts jobs wrote.",
            ("skill",),
            registry=none,
        )
        self.spend = Counter(
            "skillq_spend", "What jobs spent (ctx.spend).", ("skill", "unit"), registry=none
        )
        self.blocked = Counter(
            "skillq_loop_blocked_seconds",
            "Time a handler held the async pool's shared event loop past the threshold.",
            ("skill",),
            registry=none,
        )
        self.cancel = Histogram(
            "skillq_cancel_latency_seconds",
            "Time from a cancel reaching the worker to the job ending.",
            ("skill",),
            buckets=WAIT_BUCKETS,
            registry=none,
        )

    def job_started(self, skill: str, queue: str, waited: float | None) -> None:
        self.started.labels(skill, queue).inc()
        self.running.labels(skill, queue).inc()
        if waited is not None:
            self.waited.labels(skill, queue).observe(max(0.0, waited))

    def job_ended(
        self, skill: str, queue: str, outcome: str, code: str | None, seconds: float
    ) -> None:
        self.running.labels(skill, queue).dec()
        self.ended.labels(skill, queue, outcome).inc()
        self.duration.labels(skill, queue, outcome).observe(seconds)
        if outcome == "failed":
            self.failed.labels(skill, queue, code or "handler_error").inc()

    def job_retried(self, skill: str, queue: str) -> None:
        self.running.labels(skill, queue).dec()
        self.retried.labels(skill, queue).inc()

    def events_written(self, skill: str, count: int) -> None:
        if count:
            self.events.labels(skill).inc(count)

    def artifact_written(self, skill: str, size: int) -> None:
        self.artifact_bytes.labels(skill).inc(size)

    def cancel_latency(self, skill: str, seconds: float) -> None:
        self.cancel.labels(skill).observe(seconds)

    def spent(self, skill: str, unit: str, amount: float) -> None:
        self.spend.labels(skill, unit).inc(amount)

    def loop_blocked(self, skill: str, seconds: float) -> None:
        self.blocked.labels(skill).inc(seconds)


def prepare(settings: Settings) -> Path | None:
    """In the worker's main process, before the pool: the multiprocess directory
    (emptied: samples of an earlier run must not count), exported for the pool's
    processes. None when metrics are off."""
    if settings.metrics_port is None:
        return None
    if settings.metrics_dir is not None:
        directory = settings.metrics_dir
        shutil.rmtree(directory, ignore_errors=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="skillq-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    # prometheus_client reads it (in this process and the pool's) on import.
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def for_process(settings: Settings) -> Metrics:
    return PrometheusMetrics() if settings.metrics_port is not None else Metrics()


def serve(settings: Settings) -> Any:
    """Serve the sum of every process's samples on ``SKILLQ_METRICS_PORT``."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    assert settings.metrics_port is not None
    server, _ = start_http_server(settings.metrics_port, settings.metrics_host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.server_port)
    return server


def process_ended(settings: Settings) -> None:
    """A pool process is going away: drop its live gauge samples."""
    if settings.metrics_port is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
