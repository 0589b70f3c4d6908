"""The job API for applications (``/v1``): submit, poll, wait, stream, cancel,
fetch artifacts; skills and agents. Stateless: every answer comes from Redis
and the artifact store, so any replica serves any request.

A caller sees and cancels only the jobs it submitted, unless it holds the
admin scope; another caller's job is *not found* (404), so ids do not leak.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from ..client.asynchronous import AsyncSkillClient
from ..core.errors import InvalidRequest, JobNotFound, SkillqError
from ..store.job_status import JobStatus
from ..wire.skill_info import SkillInfo
from ..wire.submission import MAX_OWNER, SubmitOptions, eta_of
from ..workspace.grants import MAX_TOKEN_BYTES
from .http_errors import error_body
from .principals import JOB_NAMES, Authenticator, Principal
from .streams import StreamLimits, open_stream

SSE_PING_SECONDS = 15
MAX_SEQ = 2**53  # past any job's events, and within what a stream id can hold
SEQ = re.compile(r"[0-9]{1,16}")


def seq_of(last_event_id: str | None) -> int:
    """The seq a ``Last-Event-ID`` names (0 when absent or empty)."""
    if last_event_id is None or not last_event_id.strip():
        return 0
    text = last_event_id.strip()
    if not SEQ.fullmatch(text) or int(text) > MAX_SEQ:
        raise InvalidRequest(
            f"Last-Event-ID must be the seq of an event (0 to {MAX_SEQ}), not {text[:40]!r}"
        )
    return int(text)


def client_of(request: Request) -> AsyncSkillClient:
    return cast(AsyncSkillClient, request.app.state.client)


async def principal_of(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    authenticator = cast(Authenticator, request.app.state.authenticator)
    return authenticator.principal(authorization)


Client = Annotated[AsyncSkillClient, Depends(client_of)]
Caller = Annotated[Principal, Depends(principal_of)]


class SubmitRequest(BaseModel):
    """A job to run, as :class:`SubmitOptions` says it (each field here is one of
    its fields, and :meth:`options` makes the one from the other; a test holds
    them together). Identity comes from the bearer token: an ``auth`` field is
    ignored, and ``owner`` is the caller."""

    model_config = ConfigDict(extra="ignore")

    skill: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(default=None, max_length=128)
    job_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="your name for the job: the same name is the same job for you, never "
        "anyone else's; the job's id (derived from it) comes back as job_id",
    )
    grant: str | None = Field(default=None, max_length=MAX_TOKEN_BYTES)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_OWNER)
    countdown: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="start no sooner (seconds)"
    )
    eta: float | None = Field(
        default=None, allow_inf_nan=False, description="start no sooner (Unix seconds)"
    )
    priority: int | None = Field(default=None, ge=0, le=9, description="9 is the most urgent")
    concurrency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_OWNER,
        description="see @skill(key_concurrency=)",
    )
    time_limit: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="seconds the job may run (at most the skill's own limit)",
    )
    budget: dict[str, float] | None = Field(
        default=None,
        max_length=16,
        description='what the job may ctx.spend per unit, e.g. {"usd": 0.5}',
    )

    def options(self, caller: Principal) -> SubmitOptions:
        """What this request asks, for ``caller``: its names and keys scoped to it."""
        return SubmitOptions(
            self.skill,
            self.args,
            auth=caller.claims(),
            queue=self.queue,
            job_id=None if self.job_id is None else caller.job_id(JOB_NAMES, self.job_id),
            grant=self.grant,
            owner=caller.subject,
            eta=eta_of(self.countdown, self.eta),
            priority=self.priority,
            concurrency_key=self.concurrency_key,
            time_limit=self.time_limit,
            budget=self.budget,
            # Scoped to the caller: one caller's key never returns another's job.
            idempotency_key=None
            if self.idempotency_key is None
            else "http:"
            + hashlib.sha256(f"{caller.subject}\0{self.idempotency_key}".encode()).hexdigest(),
        )


class Submitted(BaseModel):
    job_id: str
    status_url: str
    events_url: str


class Outcome(BaseModel):
    job_id: str
    state: str
    finished: bool
    result: Any = None
    error: dict[str, Any] | None = None


class Cancelled(BaseModel):
    job_id: str
    cancelled: bool  # False: it had already finished
    state: str


class JobPage(BaseModel):
    jobs: list[JobStatus]
    next_before: float | None = None


router = APIRouter(prefix="/v1", tags=["jobs"])


async def visible(client: AsyncSkillClient, caller: Principal, job_id: str) -> JobStatus:
    """The job, if this caller may see it; otherwise *not found*, like a missing one."""
    status = await client.status(job_id)
    if not caller.may_see(status.owner):
        raise JobNotFound(job_id)
    return status


@router.post("/jobs", status_code=202)
async def submit(body: SubmitRequest, client: Client, caller: Caller) -> Submitted:
    """Enqueue a job as the caller; 403 if the caller lacks the skill's scopes."""
    caller.require((await skill_info(client, body.skill)).scopes)
    options = body.options(caller)
    job_id = await client.submit_options(options)
    if body.job_id is not None or body.idempotency_key is not None:
        await visible(client, caller, job_id)  # an existing id of someone else's job
    return Submitted(
        job_id=job_id,
        status_url=f"/v1/jobs/{job_id}",
        events_url=f"/v1/jobs/{job_id}/events",
    )


async def skill_info(client: AsyncSkillClient, name: str) -> SkillInfo:
    return await client.skill(name)


@router.get("/jobs")
async def list_jobs(
    client: Client,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        float | None,
        Query(allow_inf_nan=False, description="next_before of the previous page"),
    ] = None,
    state: Annotated[str | None, Query(max_length=32, description="only jobs in it")] = None,
    skill: Annotated[str | None, Query(max_length=128, description="only its jobs")] = None,
    since: Annotated[
        float | None,
        Query(allow_inf_nan=False, description="only jobs created since (Unix seconds)"),
    ] = None,
) -> JobPage:
    """The caller's jobs, newest first (every caller's for the admin scope),
    filtered by state, skill and creation time. A filter the indexes do not
    answer reads at most 20 pages of records, so a page may come back short:
    go on from ``next_before`` while it is not null."""
    page = await client.jobs(
        skill=skill,
        state=state,
        since=since,
        limit=limit,
        cursor=None if before is None else repr(before),
        owner=None if caller.admin else caller.subject,
    )
    return JobPage(jobs=page.jobs, next_before=None if page.cursor is None else float(page.cursor))


@router.get("/jobs/{job_id}")
async def status(job_id: str, client: Client, caller: Caller) -> JobStatus:
    return await visible(client, caller, job_id)


@router.get("/jobs/{job_id}/result")
async def result(
    job_id: str,
    client: Client,
    caller: Caller,
    request: Request,
    response: Response,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for the end")] = 0,
) -> Outcome:
    """The outcome of a finished job (200), or its state if it is still running
    after ``wait`` seconds (202). A failed job is a 200 with its ``error``."""
    current = await visible(client, caller, job_id)
    limit = min(wait, float(request.app.state.settings.server_max_wait))
    if not current.finished and limit > 0:
        with contextlib.suppress(TimeoutError, SkillqError):  # the record says how it ended
            await client.result(job_id, timeout=limit)
        current = await client.status(job_id)
    if not current.finished:
        response.status_code = 202
    return Outcome(
        job_id=job_id,
        state=current.state,
        finished=current.finished,
        result=current.result if current.state == "succeeded" else None,
        error=None if current.error is None else current.error.model_dump(exclude={"traceback"}),
    )


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    job_id: str,
    client: Client,
    caller: Caller,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="resume after this seq")] = 0,
) -> EventSourceResponse:
    """The job's events as Server-Sent Events: ``id`` is the event's ``seq``,
    ``event`` its kind, ``data`` the JSON envelope. Reconnecting with
    ``Last-Event-ID`` resumes after that seq (on any replica), with no gap."""
    start = max(after, seq_of(last_event_id))
    limits = cast(StreamLimits, request.app.state.streams)
    lease, _ = await open_stream(limits, client, caller, job_id)  # counted before any read

    async def stream() -> AsyncIterator[ServerSentEvent]:
        try:
            async for envelope in client.events(job_id, after=start, follow=True):
                yield ServerSentEvent(
                    data=json.dumps(envelope), id=str(envelope["seq"]), event=envelope["kind"]
                )
        except JobNotFound as exc:  # the record vanished mid-stream: say so, then end
            body = error_body("not_found", type(exc).__name__, f"{exc}: its record is gone")
            yield ServerSentEvent(data=json.dumps(body), event="error")
        finally:
            lease.release()

    # The lease goes back when the stream ends, and also if it never started.
    return EventSourceResponse(
        stream(), ping=SSE_PING_SECONDS, background=BackgroundTask(lease.release)
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, client: Client, caller: Caller) -> Cancelled:
    await visible(client, caller, job_id)
    asked = await client.cancel(job_id)
    return Cancelled(job_id=job_id, cancelled=asked, state=(await client.status(job_id)).state)


@router.post("/jobs/{job_id}/retry", status_code=202)
async def retry(job_id: str, client: Client, caller: Caller) -> Submitted:
    """A new job with an ended job's skill, args, queue and priority, submitted as
    the caller (who must be its owner, or admin, and hold the skill's scopes);
    409 while the job runs or when its args were not kept."""
    ended = await visible(client, caller, job_id)
    if ended.skill is not None:
        caller.require((await skill_info(client, ended.skill)).scopes)
    new_id = await client.retry(job_id, auth=caller.claims(), owner=caller.subject)
    return Submitted(
        job_id=new_id, status_url=f"/v1/jobs/{new_id}", events_url=f"/v1/jobs/{new_id}/events"
    )


class Answer(BaseModel):
    """The answer to the question a job waits on; checked against its schema."""

    data: Any = None


@router.post("/jobs/{job_id}/input")
async def answer(job_id: str, body: Answer, client: Client, caller: Caller) -> JobStatus:
    """Answer a job waiting ``input_required`` (only its owner, or admin); 422
    naming the field when the answer does not fit, 409 when it asks nothing."""
    await visible(client, caller, job_id)
    return await client.respond(job_id, body.data)


@router.get("/skills", tags=["registry"])
async def skills(client: Client, caller: Caller) -> list[SkillInfo]:
    return await client.skills()


@router.get("/agents", tags=["registry"])
async def agents(client: Client, caller: Caller) -> list[dict[str, Any]]:
    return [
        {
            "name": agent.name,
            "url": agent.url,
            "skills": list(agent.skills),
            "tags": list(agent.tags),
            "capabilities": list(agent.capabilities),
        }
        for agent in await client.agents()
    ]
