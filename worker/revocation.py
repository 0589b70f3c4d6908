"""The worker main process's side of cancellation.

Celery's ``revoke`` only marks ids in the main process's memory: prefork
children never see it, it is lost when workers restart, and a revoked job
that has not started is dropped before skillq's runner sees it. This module
closes those holes without forking Celery:

* the ``revoke`` remote-control command is extended (Celery documents
  custom control commands) so that any revoke — ``skillq cancel``,
  ``celery control revoke``, Flower, ``app.control.revoke`` — also sets the
  durable cancel flag and publishes the id on ``<prefix>:cancel``, which
  reaches the process running the job;
* ``task_revoked`` (sent when Celery drops or terminates a revoked job)
  finalises the job record with a terminal ``cancelled`` event;
* a watchdog terminates, through Celery's own ``Request.terminate``, a job
  still running ``cancel_grace + cancel_kill_after`` seconds after its
  cancel: a handler that blocks its event loop cannot be reached otherwise.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery, signals
from celery.utils.functional import maybe_list
from celery.worker import control
from celery.worker import state as worker_state

from .jobs import JobError, JobRecords, cancel_call
from .keys import Keys
from .runtime import sync_redis
from .scripts import CANCEL
from .settings import Settings

log = logging.getLogger(__name__)

HOOK_ATTRIBUTE = "skillq_revoke_hook"


class RevokeHandler:
    """Per worker app: reacts to revokes and revoked jobs in the main process."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._records: JobRecords | None = None

    @property
    def records(self) -> JobRecords:
        if self._records is None:
            self._records = JobRecords(sync_redis(self.settings), self.keys, self.settings)
        return self._records

    @property
    def client(self) -> redis.Redis:
        return self.records.client

    def on_revoke(self, state: Any, job_ids: Iterable[str], terminate: bool) -> None:
        for job_id in job_ids:
            try:
                keys, argv = cancel_call(self.keys, self.settings, job_id, force=True)
                self.client.eval(CANCEL, len(keys), *keys, *argv)
            except redis.RedisError as exc:
                log.error("cannot record the cancel of %s in Redis: %s", job_id, exc)
            if not terminate:
                self._arm_watchdog(state, job_id)

    def _arm_watchdog(self, state: Any, job_id: str) -> None:
        if not any(request.id == job_id for request in worker_state.active_requests):
            return
        consumer = getattr(state, "consumer", None)
        if consumer is None or consumer.timer is None:
            return
        delay = self.settings.cancel_grace + self.settings.cancel_kill_after
        consumer.timer.call_after(delay, self._enforce, (consumer, job_id))

    def _enforce(self, consumer: Any, job_id: str) -> None:
        for request in list(worker_state.active_requests):
            if request.id != job_id:
                continue
            pool = consumer.pool
            if pool is not None and "prefork" in type(pool).__module__:
                log.error("job %s ignored its cancel; terminating its process", job_id)
                request.terminate(pool, signal="SIGKILL")
            else:
                # A thread cannot be stopped: record the outcome so callers are
                # not left waiting; the thread stays busy until the handler yields.
                log.error(
                    "job %s ignored its cancel and blocks its event loop; marked cancelled, "
                    "but its %s thread stays busy until the handler returns",
                    job_id,
                    type(pool).__name__ if pool is not None else "pool",
                )
                self.finalise(job_id, request.hostname or socket.gethostname(), expired=False)
                request.task.backend.mark_as_revoked(job_id, "cancelled", request=request._context)

    def finalise(self, job_id: str, hostname: str, *, expired: bool) -> None:
        state = "failed" if expired else "cancelled"
        error = (
            JobError(type="JobExpired", message="the job expired before it ran", code="expired")
            if expired
            else None
        )
        try:
            self.records.finish(job_id, state, worker=hostname, error=error)
        except redis.RedisError as exc:
            log.error("cannot finalise revoked job %s: %s", job_id, exc)

    def on_task_revoked(self, request: Any, expired: bool) -> None:
        job_id = getattr(request, "id", None)
        if job_id:
            self.finalise(job_id, getattr(request, "hostname", None) or "", expired=expired)


def install(app: Celery, settings: Settings) -> RevokeHandler:
    """Extend ``revoke`` and listen for revoked jobs, for this app's workers."""
    handler = RevokeHandler(app, settings)
    setattr(app, HOOK_ATTRIBUTE, handler)
    _extend_revoke_command()

    def on_task_revoked(
        sender: Any = None, request: Any = None, expired: bool = False, **_: Any
    ) -> None:
        if getattr(sender, "app", None) is app:
            handler.on_task_revoked(request, expired)

    signals.task_revoked.connect(on_task_revoked, weak=False)
    return handler


def _extend_revoke_command() -> None:
    original = control.Panel.data["revoke"]
    if getattr(original, "skillq", False):
        return

    def revoke(
        state: Any, task_id: Any, terminate: bool = False, signal: Any = None, **kwargs: Any
    ) -> Any:
        hook: RevokeHandler | None = getattr(state.app, HOOK_ATTRIBUTE, None)
        if hook is not None:
            hook.on_revoke(state, [str(i) for i in maybe_list(task_id) or []], terminate)
        return original(state, task_id, terminate=terminate, signal=signal, **kwargs)

    revoke.skillq = True  # type: ignore[attr-defined]
    revoke.__doc__ = original.__doc__
    control.control_command(name="revoke", variadic="task_id", signature="[id1 [id2 [... [idN]]]]")(
        revoke
    )
