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
from typing import Any

from ..core.errors import (
    HandlerAborted,
    InvalidAuth,
)
from ..core.secrets import SecretScope
from ..interface.capabilities import JobScope
from ..interface.context import CancelledByCaller
from ..interface.skills import Skill
from ..interface.suspend import Suspended
from ..store.budgets import RedisLedger
from ..store.events import EventWriter
from ..store.job_status import job_error
from .call_parsing import parse_call
from .cancellation import CancelToken
from .celery_context import CeleryRunContext
from .endings import (
    finish,
    observe_end,
    observe_start,
    schedule_retry,
    stored_outcome,
    suspend,
)
from .handling import check_grant_use, encode_result, run_handler
from .joblogs import CURRENT, JobLog
from .limiter import concurrency_key_of
from .outcome import Outcome
from .process import ProcessRuntime

log = logging.getLogger(__name__)


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
        if outcome.state == "suspended":
            ended = suspend(rt, job_id, outcome, delivery)
            observe_end(rt, skill.name, queue, ended, token, began)
            return ended
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
            ledger=RedisLedger(rt.redis, rt.keys, settings, job_id, delivery, dict(skill.budget)),
            on_budget=skill.on_budget,
        )
        ctx.require_scopes(skill.scopes)
        value = await run_handler(rt, skill, ctx, call.args, token, call.time_limit)
        plain, result_text = encode_result(skill, value, scope, settings.max_result_bytes)
        outcome = Outcome("succeeded", result=plain)
    except Suspended as waiting:
        outcome = Outcome("suspended", exception=waiting)
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
    return outcome.but(signed_until=signed_until), result_text
