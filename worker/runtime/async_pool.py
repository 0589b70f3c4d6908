"""The async pool: up to ``-c`` jobs of one process run on one event loop.

An agent job mostly waits (a model, a tool, a person). The prefork and
threads pools give each running job a process or a thread with its own loop,
Redis connections and cancel subscription, so a process holds as many
waiting jobs as it has slots and each slot costs memory and connections.
Here one loop thread runs every job of the process as an asyncio task: the
job's synchronous part (Celery's tracer, skillq's start and finish) in a
greenlet of its own (:mod:`worker.runtime.greenbridge`), its handler on the
loop, sharing the process's one runtime (one Redis pool, one cancel
subscription, one lease keeper, one artifact store client).

Celery's consumer hands each accepted delivery to :meth:`AsyncPool.on_apply`
with as many in flight as ``-c`` (its QoS), acknowledges and leases them as
with any pool, and hears of each end through the callback.

Select it with ``skillq worker --pool async`` or, with ``celery worker``,
``-P custom`` and ``CELERY_CUSTOM_WORKER_POOL=worker.runtime.async_pool:AsyncPool``.
Handlers must not block the loop: a blocked loop stalls every job of the
process. CPU-bound or untrusted handlers, and hard time limits, want prefork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from celery.concurrency.base import BasePool, apply_target

from .greenbridge import run_in_greenlet
from .loopwatch import LoopWatch
from .metrics import for_process as metrics_for

log = logging.getLogger(__name__)

POOL = "worker.runtime.async_pool:AsyncPool"
STOP_WAIT = 5.0  # seconds a terminate waits for cancelled jobs to unwind


class AsyncPool(BasePool):
    """Celery pool whose slots are tasks of one event loop."""

    body_can_be_buffer = True
    signal_safe = False
    task_join_will_block = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._jobs: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._serve, name="skillq-async-pool", daemon=True)
        self._watch: LoopWatch | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        while True:
            try:
                self.loop.run_forever()
            except BaseException as exc:
                # A stray task of a handler's raised SystemExit or KeyboardInterrupt
                # out of the loop: every job of the process runs on it, so it goes on.
                log.error("a task on the async pool's loop raised %r; the loop goes on", exc)
                continue
            return  # stopped by the pool

    def on_start(self) -> None:
        self._thread.start()
        settings = self.app.conf.get("skillq_settings") if self.app is not None else None
        threshold = settings.loop_block_warning if settings is not None else 0.5
        metrics = metrics_for(settings) if settings is not None else None
        self._watch = LoopWatch(self.loop, self._thread, threshold, metrics).start()

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        accept_callback: Callable[..., Any] | None = None,
        **_: Any,
    ) -> None:
        self.loop.call_soon_threadsafe(
            self._spawn, target, args or (), kwargs or {}, callback, accept_callback
        )

    def _spawn(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        callback: Callable[..., Any] | None,
        accept_callback: Callable[..., Any] | None,
    ) -> None:
        job = self.loop.create_task(
            run_in_greenlet(apply_target, target, args, kwargs, callback, accept_callback)
        )
        self._jobs.add(job)
        job.add_done_callback(self._ended)

    def _ended(self, job: asyncio.Task[None]) -> None:
        self._jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("a job of the async pool ended outside Celery's tracer: %r", job.exception())

    def running(self) -> int:
        """Jobs this process runs now."""
        return len(self._jobs)

    def _drain(self, cancel: bool) -> None:
        """Wait (from another thread) for the running jobs; cancel them first if asked."""

        async def wait() -> None:
            jobs = list(self._jobs)
            if cancel:
                for job in jobs:
                    job.cancel()
            if jobs:
                await asyncio.wait(jobs, timeout=STOP_WAIT if cancel else None)

        if self._watch is not None:
            self._watch.stop()
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(wait(), self.loop).result()
        except (concurrent.futures.CancelledError, RuntimeError) as exc:
            log.debug("async pool drain: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=STOP_WAIT)

    def on_stop(self) -> None:
        """A warm shutdown: the running jobs finish first."""
        self._drain(cancel=False)

    def on_terminate(self) -> None:
        self._drain(cancel=True)

    def on_close(self) -> None:
        pass

    def _get_info(self) -> dict[str, Any]:
        return {"implementation": POOL, "max-concurrency": self.limit, "running": self.running()}
