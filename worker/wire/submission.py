"""What a client does before a job exists: find the skill, check the call, sign it.

Pure functions shared by the asyncio client and the synchronous one, so both
refuse the same submissions with the same messages and cost one Redis round
trip: the ``SUBMIT`` script records the job and, when the broker is on
skillq's Redis server, queues its Celery message too (see
:mod:`worker.wire.task_message`); otherwise Celery publishes it after.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from pydantic import BaseModel

from ..core.errors import (
    InvalidArgs,
    InvalidGrant,
    InvalidSubmission,
    JobCancelled,
    JobFailed,
    QuotaExceeded,
)
from ..core.quotas import quotas_json
from ..core.settings import Settings
from ..interface.skills import SKILL_NAME
from ..store.artifacts import JOB_ID
from ..store.celery_results import records_database
from ..store.events import dumps
from ..store.job_status import JobStatus
from ..store.keys import Keys
from ..workspace.grants import MAX_TOKEN_BYTES
from .schema_check import check_args
from .signing import sign
from .skill_info import SkillInfo
from .submit_checks import MAX_DELAY as MAX_DELAY
from .submit_checks import budget_argv, checked_json, checked_priority, finite_number, printable
from .submit_checks import eta_of as eta_of
from .submit_checks import signed_options as signed_options
from .task_message import REPR_LIMIT, DirectPublish, priority_list

MAX_OWNER = 256


@dataclass(frozen=True)
class Order:
    """A checked submission, ready to hand to Celery once its record exists."""

    job_id: str
    task_name: str
    kwargs: dict[str, Any]
    queue: str
    eta: float | None = None  # Unix seconds; None to start at once
    priority: int = 0  # 0-9, 9 the most urgent
    headers: Mapping[str, str] | None = None  # extra message headers (trace context)
    hard_limit: float | None = None  # Celery's time_limit for this message

    def send(self, app: Celery) -> None:
        options: dict[str, Any] = {}
        if self.hard_limit is not None:
            options["time_limit"] = self.hard_limit
        if self.headers:
            options["headers"] = dict(self.headers)
        if self.priority:
            options["priority"] = self.priority
        if "grant" in self.kwargs:
            options["kwargsrepr"] = shown_kwargs(self.kwargs)
        if self.eta is not None:
            options["eta"] = datetime.fromtimestamp(self.eta, UTC)
        app.send_task(
            self.task_name, kwargs=self.kwargs, task_id=self.job_id, queue=self.queue, **options
        )


def shown_kwargs(kwargs: dict[str, Any]) -> str:
    """The kwargs as Celery shows them (``kwargsrepr``: monitors, logs), with a
    grant token hidden: a grant is a bearer credential."""
    if "grant" not in kwargs:
        return repr(kwargs)
    # Given explicitly, Celery sends it uncut (twice): cut it as its own would be.
    shown = repr({**kwargs, "grant": "<workspace grant>"})
    return shown if len(shown) <= REPR_LIMIT else shown[: REPR_LIMIT - 3] + "..."


@dataclass(frozen=True)
class Parent:
    """The job whose ``ctx.call`` submits a child, and that job's call depth."""

    job_id: str
    depth: int
    inline: bool = False  # the child runs in the caller's process


@dataclass(frozen=True)
class Draft:
    """An order plus the ``SUBMIT`` call that records it as ``queued``."""

    order: Order
    record_key: str
    submit_keys: list[str]
    submit_args: list[str]
    queued_by_script: bool  # False: hand the order to Celery once recorded

    def unsubmit_args(self, job_id: str) -> list[str]:
        """``UNSUBMIT``'s ARGV: with the queued message, so it is taken back too."""
        if not self.queued_by_script:
            return [job_id]
        return [job_id, *self.submit_args[5:8]]  # SUBMIT's ARGV 6-8


@dataclass(frozen=True)
class SubmitOptions:
    """Everything one submission says, whichever way it came in (either client, the
    CLI, the HTTP job API, A2A, ``ctx.call``): built once, checked once by
    :func:`draft`, and passed down whole. A new option is one new field here.

    ``eta``: Unix seconds (see :func:`eta_of` for countdowns and datetimes).
    ``time_limit``: seconds this job may run, never more than the skill's own.
    ``parent``: the job whose ``ctx.call`` makes this one; ``headers``: extra
    message headers (trace context).
    """

    skill: str
    args: dict[str, Any] | None = None
    auth: dict[str, Any] | BaseModel | None = None
    queue: str | None = None
    job_id: str | None = None
    grant: str | None = None
    owner: str | None = None
    idempotency_key: str | None = None
    eta: float | None = None
    priority: int | None = None
    concurrency_key: str | None = None
    time_limit: float | None = None
    parent: Parent | None = None
    headers: Mapping[str, str] | None = None
    retry_of: str | None = None  # the job this one retries (linked both ways)
    budget: Mapping[str, float] | None = None  # what it may ctx.spend, per unit
    context: str | None = None  # the A2A contextId it belongs to (indexed per owner)


def draft(
    settings: Settings,
    keys: Keys,
    info: SkillInfo,
    options: SubmitOptions,
    *,
    direct: DirectPublish | None = None,
) -> Draft:
    """Check a call as the worker would (what certainly fails there fails here) and sign it.

    ``owner``: who the job belongs to (the HTTP server's caller); recorded, and
    indexed so the owner's jobs list in O(page).
    """
    args, auth, queue, job_id = options.args, options.auth, options.queue, options.job_id
    grant, owner, idempotency_key = options.grant, options.owner, options.idempotency_key
    eta, priority, concurrency_key = options.eta, options.priority, options.concurrency_key
    parent, headers, time_limit = options.parent, options.headers, options.time_limit
    skill = info.name
    args = {} if args is None else args
    if not isinstance(args, dict):
        raise InvalidArgs(skill, f"args must be a JSON object, not {type(args).__name__}")
    encoded = checked_json(skill, args, settings)
    found = check_args(args, info.args_schema)
    if found:
        raise InvalidArgs(skill, "; ".join(found))
    for name, value in (
        ("an owner", owner),
        ("an idempotency key", idempotency_key),
        ("a concurrency key", concurrency_key),
        ("a context", options.context),
    ):
        if value is not None and not printable(value, MAX_OWNER):
            raise InvalidSubmission(skill, f"{name} is 1 to {MAX_OWNER} printable characters")
    if concurrency_key is not None and not info.key_concurrency:
        raise InvalidSubmission(
            skill,
            f"skill {skill!r} declares no key_concurrency, so a concurrency key would limit "
            "nothing",
        )
    if time_limit is not None and (not finite_number(time_limit) or not time_limit > 0):
        raise InvalidSubmission(
            skill, f"time_limit must be a positive number of seconds, not {time_limit!r}"
        )
    auth_value = auth.model_dump(mode="json") if isinstance(auth, BaseModel) else auth
    job_id = job_id or str(uuid.uuid4())
    if not JOB_ID.match(job_id):
        raise InvalidSubmission(skill, f"job id {job_id!r} must match {JOB_ID.pattern}")
    target_queue = queue or info.queue
    if not SKILL_NAME.match(target_queue):
        # Queue names become broker keys: nothing that could name another key.
        raise InvalidSubmission(
            skill, f"queue name {target_queue!r} must match {SKILL_NAME.pattern}"
        )
    if grant is not None:
        if not isinstance(grant, str) or not 0 < len(grant) <= MAX_TOKEN_BYTES:
            raise InvalidGrant(f"a grant must be a token of at most {MAX_TOKEN_BYTES} bytes")
        if not info.workspace_access:
            raise InvalidGrant.without_access(skill)
    kwargs: dict[str, Any] = {"args": args}
    key = settings.auth_secret
    if key is not None:
        # Sign the args as the worker will read them: after a JSON round trip.
        # Valid for SKILLQ_AUTH_TTL from when the job may start, however far ahead.
        kwargs["auth"] = sign(
            key,
            job_id,
            skill,
            json.loads(encoded),
            auth_value or {},
            settings.auth_ttl + max(0.0, (eta or 0.0) - time.time()),
            grant=grant,
            options=signed_options(concurrency_key, time_limit),
        )
    elif auth_value is not None:
        kwargs["auth"] = auth_value
    if grant is not None:
        kwargs["grant"] = grant
    if concurrency_key is not None:
        kwargs["concurrency_key"] = concurrency_key
    hard_limit = None
    if time_limit is not None:
        kwargs["time_limit"] = float(time_limit)
        # Celery's hard limit for this message (prefork): the backstop for a handler
        # that blocks its loop, as a skill's own time_limit has.
        hard_limit = float(time_limit) + settings.cancel_grace + settings.hard_time_limit_margin
    priority = checked_priority(skill, priority)
    order = Order(
        job_id, f"skills.{skill}", kwargs, target_queue, eta, priority, headers, hard_limit
    )
    notice = (
        ""
        if info.live
        else f"no running worker serves skill {skill!r} now; the job waits in queue "
        f"{target_queue!r} until one starts"
    )
    record = keys.job(job_id)
    submit_args = [skill, target_queue, repr(time.time()), str(settings.job_retention), notice]
    submit_keys = [record, ""]
    if direct is None:
        submit_args += ["", "", ""]
    else:
        kwargs_json = '{"args":' + encoded
        if "auth" in kwargs:
            kwargs_json += ',"auth":' + dumps(kwargs["auth"])
        if "grant" in kwargs:
            kwargs_json += ',"grant":' + dumps(kwargs["grant"])
        if concurrency_key is not None:
            kwargs_json += ',"concurrency_key":' + dumps(concurrency_key)
        if "time_limit" in kwargs:
            kwargs_json += ',"time_limit":' + dumps(kwargs["time_limit"])
        message = direct.message(
            job_id,
            order.task_name,
            target_queue,
            kwargs_json + "}",
            shown_kwargs(kwargs),
            repr_given="grant" in kwargs,
            eta=None if eta is None else datetime.fromtimestamp(eta, UTC).isoformat(),
            priority=priority,
            extra_headers=headers,
            hard_limit=hard_limit,
        )
        submit_args += [message, direct.database, records_database(settings)]
        submit_keys[1] = priority_list(target_queue, priority)
    if parent is None:
        submit_args += ["", "", "", job_id, ""]
        submit_keys += ["", "", ""]
    else:
        submit_keys += [keys.job(parent.job_id), keys.cancel(parent.job_id), keys.cancel(job_id)]
        submit_args += [
            parent.job_id,
            str(parent.depth + 1),
            str(settings.cancel_ttl),
            job_id,
            "1" if parent.inline else "",
        ]
    submit_keys += [
        keys.owned(owner) if owner else "",
        keys.jobs_index(),
        keys.skill_index(skill),
        keys.idempotency(idempotency_key) if idempotency_key else "",
        keys.job(options.retry_of) if options.retry_of else "",
        keys.quotas if owner else "",
        keys.context(owner or "", options.context) if options.context else "",
    ]
    submit_args += [
        owner or "",
        "" if eta is None else repr(eta),
        str(priority or ""),
        encoded,
        options.retry_of or "",
        budget_argv(skill, options.budget),
        quotas_json(settings.default_quotas) if owner and settings.default_quota else "",
        keys.prefix,
        options.context or "",
    ]
    return Draft(order, record, submit_keys, submit_args, direct is not None)


def submitted_id(reply: Any, draft: Draft) -> tuple[str, bool]:
    """What ``SUBMIT`` answered: the job's id, and whether this call created it
    (``1``); ``0`` is an existing job id, a string the job an idempotency key made.
    Raises ``QuotaExceeded`` when it refused the submit of an owner over quota."""
    if isinstance(reply, list):
        said = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        raise QuotaExceeded(said[1], said[2], float(said[3]), float(said[4]))
    if isinstance(reply, bytes):
        reply = reply.decode()
    if isinstance(reply, str) and not reply.isdigit():
        return reply, False
    return draft.order.job_id, bool(int(reply))


def outcome(status: JobStatus) -> Any:
    """A finished job's result, or the exception that says why there is none."""
    if status.state == "succeeded":
        return status.result
    if status.state == "cancelled":
        raise JobCancelled(status.id)
    error = status.error
    raise JobFailed(
        status.id,
        error.type if error else "Error",
        error.message if error else "unknown",
        error.code if error else "handler_error",
    )
