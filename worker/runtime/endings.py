"""The ways a delivery ends once its handler returned: stored as its outcome,
scheduled to retry, suspended to wait (``ctx.sleep``), or dropped because
another delivery took the job over; and the metrics each one counts."""

from __future__ import annotations

import json
import logging
import time

from ..interface.retries import retry_delay
from ..interface.skills import Skill
from ..interface.suspend import Suspended
from ..store.celery_results import meta_json, meta_key
from ..store.jobs import StartDecision
from .cancellation import CancelToken
from .outcome import Outcome
from .process import ProcessRuntime

log = logging.getLogger(__name__)


def observe_start(rt: ProcessRuntime, skill: str, queue: str, decision: StartDecision) -> None:
    ready = decision.ready_at
    first = decision.attempts - decision.retries == 1 and decision.retries == 0
    rt.metrics.job_started(skill, queue, time.time() - ready if first and ready else None)


def observe_end(
    rt: ProcessRuntime, skill: str, queue: str, outcome: Outcome, token: CancelToken, began: float
) -> None:
    now = time.monotonic()
    if outcome.state == "retrying":
        rt.metrics.job_retried(skill, queue)
        return
    code = outcome.error.code if outcome.error is not None else None
    rt.metrics.job_ended(skill, queue, outcome.state, code, now - began)
    if outcome.state == "cancelled" and token.cancelled_at is not None:
        rt.metrics.cancel_latency(skill, now - token.cancelled_at)


def schedule_retry(
    rt: ProcessRuntime,
    skill: Skill,
    job_id: str,
    outcome: Outcome,
    retries: int,
    delivery: str = "",
) -> Outcome | None:
    """A ``retrying`` outcome if this failure runs again (the record says so), else None."""
    if outcome.state != "failed" or outcome.error is None:
        return None
    delay = retry_delay(skill, outcome.exception, retries)
    if delay is None:
        return None
    state = rt.records.retry(job_id, outcome.error, time.time() + delay, retries + 1, delivery)
    if state == "superseded":
        return superseded(job_id)
    if state != "retrying":
        return stored_outcome(rt, job_id)  # cancelled (or ended) meanwhile: that stands
    log.warning(
        "job %s (%s) attempt %d failed (%s); retrying in %.1f s",
        job_id,
        skill.name,
        retries + 1,
        outcome.error.type,
        delay,
    )
    return outcome.but(state="retrying", delay=delay)


def suspend(rt: ProcessRuntime, job_id: str, outcome: Outcome, delivery: str) -> Outcome:
    """Record the wait; the outcome tells the task to queue the job for its end."""
    waiting = outcome.exception
    assert isinstance(waiting, Suspended)
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(waiting.until))
    extra = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in waiting.detail.items())
    notice = f"sleeping until {shown}"
    if waiting.state == "input_required":
        notice = f"waiting for an answer to: {str(waiting.detail.get('question'))[:200]}"
    state = rt.records.suspend(job_id, waiting.until, waiting.state, extra, notice, delivery)
    if state == "superseded":
        return superseded(job_id)
    if state != "suspended":
        return stored_outcome(rt, job_id)  # cancelled meanwhile: that stands
    return outcome.but(delay=max(0.0, waiting.until - time.time()))


def superseded(job_id: str) -> Outcome:
    log.warning(
        "job %s: another delivery took this job over (this run's lease lapsed); "
        "the outcome of this run is dropped",
        job_id,
    )
    return Outcome("superseded")


def finish(
    rt: ProcessRuntime,
    job_id: str,
    worker: str,
    outcome: Outcome,
    result: str,
    delivery: str = "",
) -> Outcome:
    """Store the outcome (and Celery's meta, when fused) in one round trip;
    ``delivery`` fences a run's outcome (see :mod:`worker.runtime.leases`)."""
    meta = None
    if rt.fused_results:
        meta = (meta_key(job_id), meta_json(job_id, outcome.state, outcome.result, outcome.error))
    final = rt.records.finish(
        job_id,
        outcome.state,
        worker=worker,
        result_json=result,
        error=outcome.error,
        celery_meta=meta,
        signed_until=outcome.signed_until,
        delivery=delivery,
    )
    if final == "superseded":
        return superseded(job_id)
    if final != outcome.state:
        # Another process finalised the job first (a cancel); its word stands.
        return stored_outcome(rt, job_id)
    return outcome.but(celery_stored=meta is not None)


def stored_outcome(rt: ProcessRuntime, job_id: str) -> Outcome:
    """The outcome already in the record, for duplicate deliveries."""
    status = rt.records.read(job_id)
    if status is None or status.state == "cancelled":
        outcome = Outcome("cancelled")
    elif status.state == "succeeded":
        outcome = Outcome("succeeded", result=status.result)
    else:
        outcome = Outcome("failed", error=status.error)
    if rt.fused_results:
        # Celery's copy may have expired or been forgotten: write it again.
        meta = meta_json(job_id, outcome.state, outcome.result, outcome.error)
        rt.records.store_celery_meta(meta_key(job_id), meta)
        outcome = outcome.but(celery_stored=True)
    return outcome
