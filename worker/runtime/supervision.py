"""What the worker's main process does for jobs that end outside the runner.

Revokes, jobs Celery drops or terminates, hard time limits, and messages
for skills this worker does not have all end in the main process, where
skillq's runner never sees them; each must still leave a finalised record
and a terminal event.

Cancellation in particular:

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
from datetime import datetime
from typing import Any

import redis
from celery import Celery, signals
from celery.exceptions import TimeLimitExceeded
from celery.utils.functional import maybe_list
from celery.worker import control
from celery.worker import state as worker_state

from ..core.errors import JobExpired, JobTimeout, SkillqError, UnknownSkill
from ..core.settings import Settings
from ..interface.skills import TASK_PREFIX
from ..store.celery_results import fused, meta_json, meta_key
from ..store.connections import sync_redis
from ..store.job_status import JobError, job_error
from ..store.jobs import JobRecords, cancel_call
from ..store.keys import Keys
from ..store.scripts import CANCEL

log = logging.getLogger(__name__)

HOOK_ATTRIBUTE = "skillq_revoke_hook"


class Supervisor:
    """Per worker app: finalises jobs that end in the main process."""

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
                self.client.register_script(CANCEL)(keys=keys, args=argv)
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

    def _celery_meta(
        self, job_id: str, state: str, error: JobError | None
    ) -> tuple[str, str] | None:
        """Celery's result meta, when skillq writes it (fused results)."""
        if not fused(self.settings):
            return None
        return meta_key(job_id), meta_json(job_id, state, error=error)

    def finalise(self, job_id: str, hostname: str, *, expired: bool) -> None:
        state = "failed" if expired else "cancelled"
        error = job_error(JobExpired(job_id), with_traceback=False) if expired else None
        try:
            self.records.finish(
                job_id,
                state,
                worker=hostname,
                error=error,
                celery_meta=self._celery_meta(job_id, state, error),
            )
        except redis.RedisError as exc:
            log.error("cannot finalise revoked job %s: %s", job_id, exc)

    def on_task_revoked(self, request: Any, expired: bool) -> None:
        job_id = getattr(request, "id", None)
        if job_id:
            self.finalise(job_id, getattr(request, "hostname", None) or "", expired=expired)

    def fail(self, job_id: str, error: SkillqError, hostname: str) -> None:
        stored = job_error(error, with_traceback=False)
        try:
            self.records.finish(
                job_id,
                "failed",
                worker=hostname,
                error=stored,
                celery_meta=self._celery_meta(job_id, "failed", stored),
            )
        except redis.RedisError as exc:
            log.error("cannot record the failure of job %s: %s", job_id, exc)

    def on_unknown_task(self, job_id: str, name: str, hostname: str) -> None:
        if name.startswith(TASK_PREFIX):
            known = [
                n.removeprefix(TASK_PREFIX) for n in self.app.tasks if n.startswith(TASK_PREFIX)
            ]
            self.fail(job_id, UnknownSkill(name.removeprefix(TASK_PREFIX), known), hostname)

    def on_received(self, request: Any) -> None:
        """A delayed job (``countdown``/``eta``) is held here until its eta: from a
        plain producer it has no record yet, so write one (``queued``, with the
        eta) now, and status, events and cancel work before it runs."""
        eta, name = getattr(request, "eta", None), str(getattr(request, "name", "") or "")
        job_id = str(getattr(request, "id", "") or "")
        if not eta or not job_id or not name.startswith(TASK_PREFIX):
            return
        try:
            when = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
            queue = (getattr(request, "delivery_info", None) or {}).get("routing_key") or ""
            self.records.received(job_id, name.removeprefix(TASK_PREFIX), queue, when.timestamp())
        except (ValueError, redis.RedisError) as exc:
            log.error("cannot record the delayed job %s: %s", job_id, exc)

    def on_hard_time_limit(self, job_id: str, limit: float, hostname: str) -> None:
        self.fail(job_id, JobTimeout(job_id, limit), hostname)


def install(app: Celery, settings: Settings) -> Supervisor:
    """Extend ``revoke`` and listen for jobs ending in the main process."""
    handler = Supervisor(app, settings)
    setattr(app, HOOK_ATTRIBUTE, handler)
    _extend_revoke_command()

    def on_task_revoked(
        sender: Any = None, request: Any = None, expired: bool = False, **_: Any
    ) -> None:
        if getattr(sender, "app", None) is app:
            handler.on_task_revoked(request, expired)

    def on_task_unknown(sender: Any = None, name: str = "", id: str = "", **_: Any) -> None:
        if getattr(sender, "app", None) is app and id:
            handler.on_unknown_task(id, name, getattr(sender, "hostname", "") or "")

    def on_task_failure(
        sender: Any = None, task_id: str = "", exception: Any = None, **_: Any
    ) -> None:
        # Hard time limits kill the child; only the main process sees them.
        if getattr(sender, "app", None) is app and isinstance(exception, TimeLimitExceeded):
            limit = float(exception.args[0]) if exception.args else 0.0
            handler.on_hard_time_limit(task_id, limit, socket.gethostname())

    def on_task_received(sender: Any = None, request: Any = None, **_: Any) -> None:
        if request is not None:
            handler.on_received(request)

    signals.task_received.connect(on_task_received, weak=False)
    signals.task_revoked.connect(on_task_revoked, weak=False)
    signals.task_unknown.connect(on_task_unknown, weak=False)
    signals.task_failure.connect(on_task_failure, weak=False)
    return handler


def _extend_revoke_command() -> None:
    original = control.Panel.data["revoke"]
    if getattr(original, "skillq", False):
        return

    def revoke(
        state: Any, task_id: Any, terminate: bool = False, signal: Any = None, **kwargs: Any
    ) -> Any:
        hook: Supervisor | None = getattr(state.app, HOOK_ATTRIBUTE, None)
        if hook is not None:
            hook.on_revoke(state, [str(i) for i in maybe_list(task_id) or []], terminate)
        return original(state, task_id, terminate=terminate, signal=signal, **kwargs)

    revoke.skillq = True  # type: ignore[attr-defined]
    revoke.__doc__ = original.__doc__
    control.control_command(name="revoke", variadic="task_id", signature="[id1 [id2 [... [idN]]]]")(
        revoke
    )
