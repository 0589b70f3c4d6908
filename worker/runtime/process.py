"""Per-thread runtime: an event loop and the clients bound to it.

Celery tasks are synchronous and Celery has no ``async def`` tasks, so each
thread that runs jobs (a prefork child's main thread, the solo pool, each
thread of a threads pool) owns one asyncio loop and runs it inline for the
duration of each job. Nothing calls ``asyncio.run`` per task: connections,
the cancel subscription and prepared scripts live as long as the thread.

Why a loop per pool thread rather than one loop thread per process: handing
each job to another thread and back cost the threads pool a fifth of its CPU
per job (a self-pipe write, two futures, a wake-up of a third thread and the
GIL passing between them), and a handler that blocked a shared loop stalled
every other job of its process. What is the process's, not the loop's (the
secrets, the log redactor, the artifact store, limits, the delivery guard,
metrics, tracing) is built once per process and shared by its loops.

Runtimes are created lazily on a thread's first job and keyed by pid, so a
prefork child never inherits its parent's loop or sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from celery.exceptions import WorkerShutdown, WorkerTerminate
from redis.asyncio import Redis

from ..core.secrets import LogRedactor, SecretSource, redact_standard_streams
from ..core.settings import Settings
from ..core.tracing import tracing_for
from ..interface.capabilities import Capabilities
from ..store.artifacts import ArtifactStore, open_store
from ..store.celery_results import fused
from ..store.connections import async_redis, sync_redis
from ..store.jobs import JobRecords, JobStore
from ..store.keys import Keys
from .cancellation import CancelWatcher
from .greenbridge import await_only, in_job_greenlet
from .joblogs import install_capture
from .leases import DeliveryGuard
from .limiter import Limiter
from .metrics import Metrics
from .metrics import for_process as metrics_for
from .observed import Observed

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ProcessParts:
    """What a process's loops share: built once per process, on its first job."""

    secrets: SecretSource
    log_redactor: LogRedactor
    artifacts: ArtifactStore
    limiter: Limiter
    guard: DeliveryGuard
    metrics: Metrics
    observed: Observed
    fused_results: bool

    @classmethod
    def build(cls, settings: Settings, secrets: SecretSource | None = None) -> ProcessParts:
        redactor = LogRedactor()
        redactor.install()
        redact_standard_streams(redactor)
        install_capture(settings.log_format)
        keys = Keys(settings.key_prefix)
        # Limits and the guard run their own threads: a pooled client of their own.
        shared = sync_redis(settings)
        metrics = metrics_for(settings)
        return cls(
            secrets=secrets or SecretSource(directory=settings.secrets_dir),
            log_redactor=redactor,
            artifacts=open_store(settings),
            limiter=Limiter(shared, keys, settings),
            guard=DeliveryGuard(shared, keys, settings),
            metrics=metrics,
            observed=Observed(metrics, tracing_for(settings)),
            fused_results=fused(settings),
        )

    def close(self) -> None:
        self.limiter.close()
        self.guard.close()


class ProcessRuntime:
    """One thread's event loop and everything bound to it, beside its process's parts.

    The loop runs in the calling thread for the duration of each job; between
    jobs it is paused. A cancel sent meanwhile waits in the subscription and
    in the durable flag, which the next job's start checks anyway.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        parts: ProcessParts | None = None,
        secrets: SecretSource | None = None,
        setup: Callable[[ProcessRuntime], None] | None = None,
    ) -> None:
        parts = parts or ProcessParts.build(settings, secrets)
        self.settings = settings
        self.parts = parts
        self.capabilities = Capabilities()
        self.pid = os.getpid()
        self.thread = threading.get_ident()
        self.keys = Keys(settings.key_prefix)
        # The async pool's jobs run on its loop (in greenlets): the runtime is that loop's,
        # shared by every job of the process.
        adopted = running_loop()
        self.shared = adopted is not None
        self.loop = adopted or asyncio.new_event_loop()
        self.closing = False
        self.secrets = parts.secrets
        self.log_redactor = parts.log_redactor
        self.artifacts = parts.artifacts
        self.limiter = parts.limiter
        self.guard = parts.guard
        self.metrics = parts.metrics
        self.observed = parts.observed
        self.fused_results = parts.fused_results
        # One job at a time per thread: its start and end hold one connection.
        self.records = JobRecords(sync_redis(settings, single=True), self.keys, settings)
        self.redis: Redis
        self.jobs: JobStore
        self.cancels: CancelWatcher
        self._setup = setup
        self._opened: asyncio.Future[None] | None = None

    def open(self) -> None:
        """Connect; jobs of the async pool that arrive meanwhile wait for it."""
        if self._opened is None:
            opened = self._opened = self.loop.create_future()
            try:
                self.call(self._open(self._setup))
            except BaseException as exc:
                self._opened = None  # not kept: the next job opens it again
                if isinstance(exc, asyncio.CancelledError):
                    opened.cancel()
                else:
                    opened.set_exception(exc)
                    opened.exception()  # the jobs waiting on it were told; no warning
                raise
            opened.set_result(None)
        elif not self._opened.done():
            self.call(self._until_open(self._opened))

    @staticmethod
    async def _until_open(opened: asyncio.Future[None]) -> None:
        await asyncio.shield(opened)

    async def _open(self, setup: Callable[[ProcessRuntime], None] | None) -> None:
        # The async pool's jobs share one bounded pool; a pool thread's loop runs one job.
        size = self.settings.async_pool_connections if self.shared else 0
        self.redis = async_redis(self.settings, pool_size=size)
        self.jobs = JobStore(self.redis, self.keys, self.settings)
        self.cancels = CancelWatcher(self.redis, self.keys)
        await self.cancels.start()
        if setup is None:
            return
        try:
            setup(self)  # attaches capability clients bound to this loop
        except BaseException:
            await self.cancels.stop()  # opened again by the next job, from the start
            await self.redis.aclose()
            raise

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this thread's loop and return its result."""
        if in_job_greenlet():  # the async pool: the loop runs other jobs meanwhile
            return await_only(coro)
        future = asyncio.ensure_future(coro, loop=self.loop)
        while True:
            try:
                return self.loop.run_until_complete(future)
            except (WorkerShutdown, WorkerTerminate):
                raise  # Celery's own shutdown: the job is left for redelivery
            except BaseException as exc:
                if future.done():
                    raise
                # A stray task of the handler's unwound the loop; ours goes on.
                log.error("a task on the skillq loop raised %r; the loop goes on", exc)

    def close(self) -> None:
        """Close the loop's clients; from its own thread, or once that thread is idle."""
        self.closing = True

        async def shutdown() -> None:
            await self.cancels.stop()
            await self.redis.aclose()

        try:
            if not self.loop.is_closed() and not self.loop.is_running():
                self.loop.run_until_complete(asyncio.wait_for(shutdown(), 5))
                self.loop.close()
        except Exception as exc:  # closing is best effort
            log.debug("runtime shutdown: %s", exc)
        self.records.client.close()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, if any (the async pool's, in its jobs)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Engine:
    """Hands each thread that runs jobs its own :class:`ProcessRuntime`, made on first use."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretSource | None = None,
        setup: Callable[[ProcessRuntime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.setup = setup
        self.secrets = secrets
        self._parts: ProcessParts | None = None
        self._parts_pid = 0
        self._runtimes: list[ProcessRuntime] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def runtime(self) -> ProcessRuntime:
        current: ProcessRuntime | None = getattr(self._local, "runtime", None)
        if current is not None and current.pid == os.getpid() and not current.closing:
            current.open()  # at once, unless another job of the async pool is opening it
            return current
        with self._lock:
            pid = os.getpid()
            if self._parts is None or self._parts_pid != pid:
                # This process's first job (a prefork child forgets its parent's parts).
                self._parts = ProcessParts.build(self.settings, self.secrets)
                self._parts_pid = pid
                self._runtimes = []
            parts = self._parts
        current = ProcessRuntime(self.settings, parts=parts, setup=self.setup)
        with self._lock:
            self._runtimes.append(current)
        self._local.runtime = current  # before it opens: the async pool's next jobs wait
        current.open()
        return current

    def close(self) -> None:
        with self._lock:
            mine = self._parts_pid == os.getpid()
            runtimes = self._runtimes if mine else []
            parts = self._parts if mine else None
            self._runtimes = []
            self._parts = None
        for runtime in runtimes:
            runtime.close()
        if parts is not None:
            parts.close()
