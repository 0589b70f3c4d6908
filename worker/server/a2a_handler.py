"""The A2A request handler: A2A methods as skillq job operations.

The SDK's default handler keeps running tasks, their event queues and
resubscription in one process's memory, so a second replica cannot serve a
stream and a reconnecting client loses what was sent meanwhile. This one
keeps nothing: a task is a skillq job (the task id is the job id), its
events are the job's Redis stream, so any replica serves ``GetTask``,
``SubscribeToTask`` or ``CancelTask`` for any task, from a snapshot and
then every event after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator
from typing import Any, cast
from urllib.parse import quote

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
)
from a2a.utils import errors as a2a_errors
from a2a.utils.proto_utils import validate_proto_required_fields
from a2a.utils.task import apply_history_length, validate_history_length, validate_page_size

from ..client.asynchronous import AsyncSkillClient
from ..core.errors import JobNotFound, SkillqError, spec_for
from ..core.settings import Settings
from ..store.job_status import TERMINAL_STATES, ArtifactInfo
from ..wire.submission import SubmitOptions
from . import a2a_convert as convert
from .a2a_messages import args_of, meta_of
from .a2a_offered import NotOffered
from .a2a_tasks import Record, TaskRecords, status_time
from .jobs_api import skill_info
from .principals import MESSAGE_IDS, Principal
from .streams import StreamLimits

ERRORS_BY_CODE = {code: cls for cls, code in a2a_errors.JSON_RPC_ERROR_CODE_MAP.items()}
# Where a blocking SendMessage returns: a terminal state, or one that waits on
# the client (spec 1.0, 3.2.2: "terminal ... or an interrupted state").
SETTLED = TERMINAL_STATES | {"input_required"}


def a2a_error(exc: BaseException) -> a2a_errors.A2AError:
    """The A2A error the one error table names for ``exc``."""
    spec = spec_for(exc)
    kind = ERRORS_BY_CODE.get(spec.a2a_code, a2a_errors.InternalError)
    return kind(message=str(exc), data={"code": spec.code})


class SkillqRequestHandler(NotOffered, RequestHandler):
    def __init__(self, client: Any, settings: Settings, streams: StreamLimits) -> None:
        self._client_of = client  # a callable: the app's client, made in its lifespan
        self._settings = settings
        self._streams = streams

    @property
    def client(self) -> AsyncSkillClient:
        return cast(AsyncSkillClient, self._client_of())

    def records(self, *, streaming: bool = False) -> TaskRecords:
        """Records read on the requests' Redis pool, or (``streaming``) on the
        pool the server's event streams read on."""
        client = self.client
        redis = client.redis if client.fanout is None or not streaming else client.fanout.redis
        return TaskRecords(redis, client.keys, self._settings.job_retention)

    # --- who is asking ---

    @staticmethod
    def _caller(context: ServerCallContext) -> Principal:
        principal = context.state.get("principal")
        if not isinstance(principal, Principal):
            raise a2a_errors.InvalidRequestError(message="not authenticated")
        return principal

    def _base_url(self, context: ServerCallContext) -> str:
        if self._settings.server_public_url:
            return self._settings.server_public_url.rstrip("/")
        host = context.state.get("headers", {}).get("host", "localhost")
        return f"http://{host}"

    async def _visible(self, job_id: str, caller: Principal, *, streaming: bool = False) -> Record:
        record = await self.records(streaming=streaming).read(job_id)
        if record is None or not caller.may_see(record.job.owner):
            raise a2a_errors.TaskNotFoundError(message=f"task not found: {job_id}")
        return record

    def _url_of(self, job_id: str, context: ServerCallContext) -> convert.UrlOf:
        async def url(info: ArtifactInfo) -> str:
            if info.uri.startswith("s3://"):
                return await self.client.artifact_url(info.ref(), 3600)
            name = quote(info.name, safe="/")
            return f"{self._base_url(context)}/v1/jobs/{job_id}/artifacts/{name}"

        return url

    async def _snapshot(self, record: Record, context: ServerCallContext) -> Task:
        job = record.job
        envelopes = [
            item
            async for item in self.client.events(job.id, follow=False)
            if item["seq"] <= job.last_seq
        ]
        text = convert.streamed_text(envelopes)
        return await convert.snapshot(
            job,
            text,
            self._url_of(job.id, context),
            context_id=record.context,
            history=record.history(),
        )

    async def _settle(self, job_id: str) -> None:
        """Wait, at most ``SKILLQ_SERVER_MAX_WAIT``, until the job ends or waits
        for an answer: pushed events, not polling."""
        job = await self.client.status(job_id)
        if job.state in SETTLED:
            return
        # An async generator: closed here, so its subscription ends with the wait.
        events = cast(
            AsyncGenerator[dict[str, Any]],
            self.client.events(job_id, after=job.last_seq, follow=True),
        )
        with contextlib.suppress(TimeoutError, SkillqError):
            async with contextlib.aclosing(events), asyncio.timeout(self._settings.server_max_wait):
                async for envelope in events:
                    state = (envelope.get("payload") or {}).get("state")
                    if envelope.get("kind") == "status" and state in SETTLED:
                        return

    # --- A2A methods ---

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        validate_proto_required_fields(params)
        validate_history_length(params.configuration)
        job_id = await self._submit(params, context)
        caller = self._caller(context)
        if not params.configuration.return_immediately:
            await self._settle(job_id)
        task = await self._snapshot(await self._visible(job_id, caller), context)
        return apply_history_length(task, params.configuration)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        validate_proto_required_fields(params)
        validate_history_length(params.configuration)
        try:
            self._streams.check(self._caller(context).subject)  # before a job is made
        except SkillqError as exc:
            raise a2a_error(exc) from exc
        job_id = await self._submit(params, context)
        # The send's own stream ends where a blocking send returns: at the end,
        # or where the task waits on the client (spec 1.0, 3.5.2).
        async for event in self._follow(job_id, context, interrupted=True):
            if isinstance(event, Task):
                event = apply_history_length(event, params.configuration)
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        validate_proto_required_fields(params)
        async for event in self._follow(params.id, context, subscribing=True):
            yield event

    async def _follow(
        self,
        job_id: str,
        context: ServerCallContext,
        *,
        interrupted: bool = False,
        subscribing: bool = False,
    ) -> AsyncGenerator[Event]:
        """A snapshot, then every event after it, to the end of the job (with
        ``interrupted``: or to where it waits for an answer). ``subscribing`` to
        a task that has ended is UnsupportedOperation (spec 1.0, 3.1.6 and 9.4.6):
        GetTask reads it."""
        caller = self._caller(context)
        try:  # counted before anything is read, as streams.open_stream does
            lease = self._streams.take(caller.subject)
        except SkillqError as exc:
            raise a2a_error(exc) from exc
        try:
            # Read on the streams' own pool, as every stream's reads are.
            record = await self._visible(job_id, caller, streaming=True)
            if subscribing and record.job.finished:
                raise a2a_errors.UnsupportedOperationError(
                    message=f"task {job_id} has ended ({record.job.state}): GetTask reads it"
                )
            async for event in self._events(record, context, interrupted):
                yield event
        except JobNotFound:
            raise a2a_errors.TaskNotFoundError(
                message=f"task {job_id} is gone: its record expired or Redis lost it"
            ) from None
        finally:
            lease.release()

    async def _events(
        self, record: Record, context: ServerCallContext, interrupted: bool
    ) -> AsyncGenerator[Event]:
        job, job_id, context_id = record.job, record.job.id, record.context
        snapshot = await self._snapshot(record, context)
        yield snapshot
        if job.finished or (interrupted and snapshot.status.state in convert.INTERRUPTED):
            return
        text_started = any(item.artifact_id == convert.TEXT_ARTIFACT for item in snapshot.artifacts)
        url_of = self._url_of(job_id, context)

        async def result() -> Any:
            return (await self.client.status(job_id)).result

        async for envelope in self.client.events(job_id, after=job.last_seq, follow=True):
            for update in await convert.updates(
                envelope,
                job_id,
                context_id,
                text_started=text_started,
                url_of=url_of,
                result=result,
            ):
                yield update
                if convert.is_final(update, interrupted=interrupted):
                    return
            text_started = text_started or envelope.get("kind") == "text_delta"

    async def _submit(self, params: SendMessageRequest, context: ServerCallContext) -> str:
        caller = self._caller(context)
        message = params.message
        if message.task_id:  # continuing a task: the answer to what it asks
            record = await self._visible(message.task_id, caller)
            if message.context_id and message.context_id != record.context:
                raise a2a_errors.InvalidParamsError(
                    message=f"task {record.job.id} is in context {record.context}, "
                    f"not {message.context_id}"
                )
            if record.job.finished:  # spec 1.0, 3.1.1: terminal tasks take no messages
                raise a2a_errors.UnsupportedOperationError(
                    message=f"task {record.job.id} has ended ({record.job.state}): "
                    "send a new message to start another task"
                )
            try:
                await self.client.respond(message.task_id, args_of(message))
            except SkillqError as exc:
                raise a2a_error(exc) from exc
            return str(message.task_id)
        skill = meta_of(params, "skill") or await self._only_skill()
        args = args_of(message)
        grant = meta_of(params, "grant")
        # A duplicate messageId from the same caller names the same job: SUBMIT
        # never records (or queues) one id twice.
        job_id = caller.job_id(MESSAGE_IDS, message.message_id)
        try:
            caller.require((await skill_info(self.client, skill)).scopes)
            options = SubmitOptions(
                skill,
                args,
                auth=caller.claims(),
                job_id=job_id,
                owner=caller.subject,
                grant=grant,
                # The client's context, else one of the task's own (its id).
                context=message.context_id or job_id,
            )
            submitted = await self.client.submit_options(options)
        except SkillqError as exc:
            raise a2a_error(exc) from exc
        except PermissionError as exc:
            raise a2a_error(exc) from exc
        await self._visible(submitted, caller)  # someone else's message id: not theirs
        return submitted

    async def _only_skill(self) -> str:
        names = sorted({info.name for info in await self.client.skills()})
        if len(names) == 1:
            return names[0]
        raise a2a_errors.InvalidParamsError(
            message="name the skill in the message metadata key 'skill'; this agent serves "
            + ", ".join(names)
        )

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        validate_proto_required_fields(params)
        validate_history_length(params)
        record = await self._visible(params.id, self._caller(context))
        return apply_history_length(await self._snapshot(record, context), params)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        validate_proto_required_fields(params)
        validate_history_length(params)
        if params.HasField("page_size"):
            validate_page_size(params.page_size)
        caller = self._caller(context)
        before = None
        if params.page_token:
            try:
                before = float(params.page_token)
            except ValueError:
                before = math.nan
            if not math.isfinite(before):
                raise a2a_errors.InvalidParamsError(
                    message="page_token must be the next_page_token of the page before"
                )
        keys = self.client.keys
        if params.context_id:  # the caller's own tasks in that context
            index = keys.context(caller.subject, params.context_id)
        elif caller.admin:  # every caller's tasks, as the job API lists them for admin
            index = keys.jobs_index()
        else:
            index = keys.owned(caller.subject)
        records = self.records()
        page, last = await records.page(index, params.page_size or 50, before)
        # The page goes on from the last job read, whatever the filters kept.
        if params.status:
            wanted = convert.JOB_STATES.get(params.status)
            page = [record for record in page if record.job.state == wanted]
        if params.HasField("status_timestamp_after"):
            after = params.status_timestamp_after.ToDatetime().timestamp()
            page = [record for record in page if status_time(record.job) >= after]
        tasks = []
        for record in page:
            task = await convert.snapshot(
                record.job,
                "",
                self._url_of(record.job.id, context),
                context_id=record.context,
                # History only when asked for: it holds each task's args.
                history=record.history() if params.HasField("history_length") else (),
                with_artifacts=params.include_artifacts,
            )
            tasks.append(apply_history_length(task, params))
        return ListTasksResponse(
            tasks=tasks,
            next_page_token="" if last is None else repr(last),
            page_size=len(tasks),
            total_size=await records.total(index),
        )

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        validate_proto_required_fields(params)
        caller = self._caller(context)
        job = (await self._visible(params.id, caller)).job
        if job.finished:
            raise a2a_errors.TaskNotCancelableError(
                message=f"task {job.id} already ended: {job.state}"
            )
        await self.client.cancel(job.id)
        with contextlib.suppress(TimeoutError, SkillqError):
            await asyncio.wait_for(self.client.result(job.id), self._settings.server_max_wait)
        return await self._snapshot(await self._visible(job.id, caller), context)
