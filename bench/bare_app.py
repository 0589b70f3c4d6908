"""The bare Celery baseline: same broker, pool and reliability settings, no skillq."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery
from celery.contrib.abortable import AbortableTask

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://localhost:6379/0")
BACKEND = os.environ.get("BENCH_BACKEND_URL", BROKER)


def make_app(broker: str, backend: str) -> Celery:
    """Bare Celery with skillq's reliability settings (acks late, prefetch 1, JSON)."""
    bare = Celery("bare", broker=broker, backend=backend)
    bare.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=False,
        task_default_queue="bare",
        broker_connection_retry_on_startup=True,
    )
    return bare


app = make_app(BROKER, BACKEND)


@app.task(name="bare.noop")
def noop() -> None:
    return None


@app.task(bind=True, base=AbortableTask, name="bare.abortable")
def abortable(self: AbortableTask, key: str) -> None:
    """Polls for an abort every millisecond, as a handler would check a flag."""
    client = redis.Redis.from_url(BROKER)
    client.set(key + ":started", "1", ex=300)
    while True:
        if self.is_aborted():
            client.set(key, repr(time.time()), ex=300)
            return
        time.sleep(0.001)


DELTAS = redis.Redis.from_url(BROKER)  # one pool for every thread's deltas


@app.task(name="bare.wait")
def wait(seconds: float = 2.0, deltas: int = 0) -> None:
    """Waits as a model call would; with deltas, publishes each as a token."""
    if not deltas:
        time.sleep(seconds)
        return
    for index in range(deltas):
        time.sleep(seconds / deltas)
        DELTAS.publish("bare:deltas", f"token {index} ")
