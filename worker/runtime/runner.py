"""One delivery of a job: message → context → handler → outcome.

Round trips are the cost that matters, so a job that emits nothing costs two
script calls: ``start`` (cancel check, attempt count, record, first status
event) and ``finish`` (result, record, terminal event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..core.errors import (
    HandlerAborted,
    InvalidAuth,
)
from ..core.secrets import SecretScope
from ..interface.capabilities import JobScope
from ..interface.context import CancelledByCaller
from ..interface.retries import retry_delay
from ..interface.skills import Skill
from ..store.celery_results import meta_json, meta_key
from ..store.events import EventWriter
from ..store.job_status import JobError, job_error
from ..store.jobs import StartDecision
from .call_parsing import parse_call
from .cancellation import CancelToken
from .celery_context import CeleryRunContext
from .handling import check_grant_use, encode_result, run_handler
from .joblogs import CURRENT, JobLog
from .limiter import concurrency_key_of
from .process import ProcessRuntime

log = logging.getLogger(__name__)

# "superseded": this run's lease lapsed and another delivery took the job over.
Final = Literal["succeeded", "failed", "cancelled", "retrying", "waiting", "superseded"]


@dataclass(frozen=True)
class Outcome:
    state: Final
    result: Any = None
    error: JobError | None = None
    celery_stored: bool = False  # Celery's result meta is already written
    signed_until: int | None = None  # a signed call: refuse replays until then
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    delay: float | None = None  # "retrying"/"waiting": seconds until the next attempt


def run_job(
    rt: ProcessRuntime,
    skill: Skill,
    job_id: str,
    positional: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    worker: str,
    queue: str | None = None,
    trace: Mapping[str, str] | None = None,
) -> Outcome:
    """Run one delivery of a job, in the pool's thread.

    ``queue``: the queue the message came from (the skill's own by default).
    A skill with limits first asks for its slots: over a limit, the outcome
    is ``waiting`` and the caller puts the message back with its delay.
    """
    with rt.limiter.holding(skill, job_id, concurrency_key_of(kwargs)) as admitted:
        if not admitted.run:
            delay, reason = admitted.delay, admitted.reason
            log.info("job %s (%s) waits %.2f s for %s", job_id, skill.name, delay, reason)
            return Outcome("waiting", delay=delay)
        return run_admitted(
            rt, skill, job_id, positional, kwargs, worker, queue or skill.queue, trace
        )


def run_admitted(
    rt: ProcessRuntime,
    skill: Skill,
    job_id: str,
    positional: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    worker: str,
    queue: str,
    trace: Mapping[str, str] | None,
) -> Outcome:
    """The delivery, once the skill's limits (if any) let it start."""
    token = rt.cancels.register(job_id)
    try:
        decision = rt.records.start(job_id, skill.name, worker, queue)
        if decision.action == "cancelled":
            return Outcome("cancelled")
        if decision.action == "replayed":
            log.error("job %s (%s) refused: a replay of a signed call that ran", job_id, skill.name)
            replayed = InvalidAuth(
                skill.name,
                "this signed call already ran; a replayed message is refused until its "
                "signature expires",
            )
            return finish(rt, job_id, worker, Outcome("failed", error=job_error(replayed)), "")
        if decision.action in ("done", "failed"):
            if decision.action == "failed":
                log.error(
                    "job %s (%s) not run: delivery %d is over SKILLQ_MAX_DELIVERIES=%d",
                    job_id,
                    skill.name,
                    decision.attempts,
                    rt.settings.max_deliveries,
                )
            return stored_outcome(rt, job_id)
        began = time.monotonic()
        observe_start(rt, skill.name, queue, decision)
        rt.guard.watch(job_id, decision.delivery, token, rt.loop)
        outcome, result_text = rt.call(
            execute(
                rt,
                skill,
                job_id,
                positional,
                kwargs,
                token,
                worker=worker,
                queue=queue,
                attempt=decision.attempts,
                trace=trace,
                delivery=decision.delivery,
            )
        )
        delivery = decision.delivery
        retried = schedule_retry(rt, skill, job_id, outcome, decision.retries, delivery)
        if retried is not None:
            observe_end(rt, skill.name, queue, retried, token, began)
            return retried
        ended = finish(rt, job_id, worker, outcome, result_text, delivery)
        observe_end(rt, skill.name, queue, ended, token, began)
        return ended
    finally:
        rt.guard.unwatch(job_id)
        rt.cancels.unregister(job_id)


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
    return replace(outcome, state="retrying", delay=delay)


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
    return replace(outcome, celery_stored=meta is not None)


async def execute(
    rt: ProcessRuntime,
    skill: Skill,
    job_id: str,
    positional: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    token: CancelToken,
    *,
    worker: str = "",
    queue: str = "",
    attempt: int = 1,
    trace: Mapping[str, str] | None = None,
    delivery: str = "",
) -> tuple[Outcome, str]:
    """Validate, build the context, run the handler; the outcome and result text.

    Traced, the run is one span (a child of the submit span whose context the
    message carries, or of the current span for an inline child)."""
    attributes = {
        "skillq.job_id": job_id,
        "skillq.skill": skill.name,
        "messaging.destination.name": queue or skill.queue,
        "skillq.attempt": attempt,
        "skillq.worker": worker,
    }
    with rt.observed.span(
        f"skillq.job {skill.name}", attributes, kind="CONSUMER", carrier=trace
    ) as span:
        outcome, text = await _execute(
            rt, skill, job_id, positional, kwargs, token, worker, delivery
        )
        if span is not None:
            span.set_attribute("skillq.outcome", outcome.state)
            if outcome.error is not None:
                span.set_attribute("skillq.error_code", outcome.error.code)
        return outcome, text


async def _execute(
    rt: ProcessRuntime,
    skill: Skill,
    job_id: str,
    positional: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    token: CancelToken,
    worker: str,
    delivery: str = "",
) -> tuple[Outcome, str]:
    settings = rt.settings
    scope = SecretScope(rt.secrets, skill.name, skill.secrets, rt.log_redactor)
    writer = EventWriter(rt.jobs, job_id, delivery)
    loop = asyncio.get_running_loop()
    # From here on this task's log records name the job (the worker's own
    # lines through the job filter, the handler's as its log events). execute
    # always runs as a task of its own, so this ends with it.
    CURRENT.set(JobLog(job_id, skill.name, writer, loop, scope.redact, settings.job_log_lines))
    result_text = ""
    signed_until = None
    ctx: CeleryRunContext[Any] | None = None
    try:
        call = parse_call(
            skill,
            positional,
            kwargs,
            settings.max_args_bytes,
            max_depth=settings.max_args_depth,
            job_id=job_id,
            auth_key=settings.auth_secret,
        )
        signed_until = call.signed.expires_at if call.signed is not None else None
        limit = call.time_limit
        job = JobScope(
            job_id=job_id,
            skill=skill.name,
            claims=call.claims,
            deadline=None if limit is None else time.monotonic() + limit,
            on_cancel=token.on_cancel,
            worker=worker,
            cancelled=lambda: token.cancelled,
            grant=call.grant,
            workspace_access=skill.workspace_access,
        )
        check_grant_use(rt, skill, call)
        ctx = CeleryRunContext(
            task_id=job_id,
            auth=call.auth,
            events=writer,
            jobs=rt.jobs,
            artifacts=rt.artifacts,
            secrets=scope,
            token=token,
            max_event_bytes=settings.max_event_bytes,
            capabilities=await rt.capabilities.for_job(job),
            workspace_access=skill.workspace_access,
            skill=skill.name,
            observed=rt.observed,
            delivery=delivery,
        )
        ctx.require_scopes(skill.scopes)
        value = await run_handler(rt, skill, ctx, call.args, token, call.time_limit)
        plain, result_text = encode_result(skill, value, scope, settings.max_result_bytes)
        outcome = Outcome("succeeded", result=plain)
    except (CancelledByCaller, asyncio.CancelledError) as exc:
        if token.cancelled:
            log.info("job %s (%s) cancelled: %s", job_id, skill.name, type(exc).__name__)
            outcome = Outcome("cancelled")
        elif isinstance(exc, asyncio.CancelledError) and rt.closing:
            raise  # the process is shutting down: leave the job for redelivery
        elif isinstance(exc, asyncio.CancelledError):
            aborted = HandlerAborted(
                exc,
                "no cancel was requested for this job (did the handler await a task "
                "that something else cancelled?)",
            )
            aborted.__traceback__ = exc.__traceback__
            outcome = Outcome("failed", error=job_error(aborted, scope.redact), exception=aborted)
        else:
            outcome = Outcome("failed", error=job_error(exc, scope.redact), exception=exc)
    except Exception as exc:
        outcome = Outcome("failed", error=job_error(exc, scope.redact), exception=exc)
    if outcome.error is not None:
        log.warning(
            "job %s (%s) failed: %s: %s%s",
            job_id,
            skill.name,
            outcome.error.type,
            outcome.error.message,
            "\n" + outcome.error.traceback if outcome.error.traceback else "",
        )
    with contextlib.suppress(Exception):
        if ctx is not None:
            await ctx.flush_text()  # text held back in case it began a secret
        await writer.drain()  # a broken event stream must not hide the outcome
    rt.metrics.events_written(skill.name, writer.written)
    return replace(outcome, signed_until=signed_until), result_text


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
        outcome = replace(outcome, celery_stored=True)
    return outcome
