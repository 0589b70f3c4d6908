"""Per-process runtime: one event loop and the clients bound to it.

Celery tasks are synchronous and Celery has no ``async def`` tasks, so each
worker process owns one asyncio loop running in a dedicated thread. Pool
threads (or the prefork child's main thread, or the solo pool) hand their
coroutines to it. Nothing calls ``asyncio.run`` per task: connections, the
cancel subscription and prepared scripts live as long as the process.

The runtime is created lazily on the first job in a process and keyed by pid,
so a prefork child never inherits its parent's loop or sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Coroutine
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
from .joblogs import install_capture
from .leases import DeliveryGuard
from .limiter import Limiter
from .metrics import for_process as metrics_for
from .observed import Observed

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProcessRuntime:
    """One worker process's event loop and everything bound to it.

    ``inline``: the loop runs in the calling thread for the duration of each
    job (prefork children and the solo pool run one job at a time in their
    main thread, so a hand-off to another thread would only add latency).
    Otherwise (threads pool) the loop runs in its own thread and pool threads
    hand it their coroutines. Between jobs an inline loop is paused; a cancel
    sent meanwhile waits in the subscription and in the durable flag, which
    the next job's start checks anyway.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        inline: bool,
        secrets: SecretSource | None = None,
        setup: Callable[[ProcessRuntime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.capabilities = Capabilities()
        self.inline = inline
        self.pid = os.getpid()
        self.keys = Keys(settings.key_prefix)
        self.loop = asyncio.new_event_loop()
        self.closing = False
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._serve, name="skillq-loop", daemon=True)
            self._thread.start()
        self.secrets = secrets or SecretSource(directory=settings.secrets_dir)
        self.log_redactor = LogRedactor()
        self.log_redactor.install()
        redact_standard_streams(self.log_redactor)
        self.artifacts: ArtifactStore = open_store(settings)
        # Inline (prefork, solo) a process runs one job at a time: one connection.
        self.records = JobRecords(sync_redis(settings, single=inline), self.keys, settings)
        self.limiter = Limiter(self.records.client, self.keys, settings)
        self.guard = DeliveryGuard(self.records.client, self.keys, settings)
        self.metrics = metrics_for(settings)
        self.observed = Observed(self.metrics, tracing_for(settings))
        install_capture(settings.log_format)
        self.fused_results = fused(settings)
        self.redis: Redis
        self.jobs: JobStore
        self.cancels: CancelWatcher
        self.call(self._open(setup))

    async def _open(self, setup: Callable[[ProcessRuntime], None] | None) -> None:
        self.redis = async_redis(self.settings)
        self.jobs = JobStore(self.redis, self.keys, self.settings)
        self.cancels = CancelWatcher(self.redis, self.keys)
        await self.cancels.start()
        if setup is not None:
            setup(self)  # attaches capability clients bound to this loop

    def _serve(self) -> None:
        """Run the loop until :meth:`close`, whatever a stray task raises.

        A task a handler spawned that raises ``SystemExit`` or
        ``KeyboardInterrupt`` unwinds ``run_forever``; without this the
        loop thread would end and every later job of the process would hang.
        """
        while True:
            try:
                self.loop.run_forever()
                return
            except BaseException as exc:
                if self.closing:
                    return
                log.error("a task on the skillq loop raised %r; the loop goes on", exc)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this process's loop and return its result."""
        if not self.inline:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
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
        self.closing = True

        async def shutdown() -> None:
            await self.cancels.stop()
            await self.redis.aclose()

        try:
            if self.inline:
                if not self.loop.is_closed():
                    self.loop.run_until_complete(asyncio.wait_for(shutdown(), 5))
                    self.loop.close()
            elif self.loop.is_running():
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=5)
                self.loop.call_soon_threadsafe(self.loop.stop)
                if self._thread is not None:
                    self._thread.join(timeout=5)
        except Exception as exc:  # closing is best effort
            log.debug("runtime shutdown: %s", exc)
        self.limiter.close()
        self.guard.close()
        self.records.client.close()


class Engine:
    """Hands each process its own :class:`ProcessRuntime`, created on first use."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretSource | None = None,
        setup: Callable[[ProcessRuntime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.setup = setup
        self.secrets = secrets
        self._runtime: ProcessRuntime | None = None
        self._lock = threading.Lock()

    def runtime(self) -> ProcessRuntime:
        current = self._runtime
        if current is not None and current.pid == os.getpid():
            return current
        with self._lock:
            current = self._runtime
            if current is None or current.pid != os.getpid():
                inline = threading.current_thread() is threading.main_thread()
                current = self._runtime = ProcessRuntime(
                    self.settings, inline=inline, secrets=self.secrets, setup=self.setup
                )
            return current

    def close(self) -> None:
        with self._lock:
            if self._runtime is not None and self._runtime.pid == os.getpid():
                self._runtime.close()
            self._runtime = None
