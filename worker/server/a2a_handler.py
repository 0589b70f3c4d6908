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
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils import errors as a2a_errors

from ..client.asynchronous import AsyncSkillClient
from ..core.errors import JobNotFound, SkillqError, spec_for
from ..core.settings import Settings
from ..store.job_status import ArtifactInfo, JobStatus
from ..wire.submission import SubmitOptions
from . import a2a_convert as convert
from .jobs_api import skill_info
from .principals import MESSAGE_IDS, Principal
from .streams import StreamLimits, open_stream

ERRORS_BY_CODE = {code: cls for cls, code in a2a_errors.JSON_RPC_ERROR_CODE_MAP.items()}


def a2a_error(exc: BaseException) -> a2a_errors.A2AError:
    """The A2A error the one error table names for ``exc``."""
    spec = spec_for(exc)
    kind = ERRORS_BY_CODE.get(spec.a2a_code, a2a_errors.InternalError)
    return kind(message=str(exc), data={"code": spec.code})


class SkillqRequestHandler(RequestHandler):
    def __init__(self, client: Any, settings: Settings, streams: StreamLimits) -> None:
        self._client_of = client  # a callable: the app's client, made in its lifespan
        self._settings = settings
        self._streams = streams

    @property
    def client(self) -> AsyncSkillClient:
        return cast(AsyncSkillClient, self._client_of())

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

    async def _visible(self, job_id: str, caller: Principal) -> JobStatus:
        try:
            job = await self.client.status(job_id)
        except JobNotFound:
            raise a2a_errors.TaskNotFoundError(message=f"task not found: {job_id}") from None
        if not caller.may_see(job.owner):
            raise a2a_errors.TaskNotFoundError(message=f"task not found: {job_id}")
        return job

    def _url_of(self, job_id: str, context: ServerCallContext) -> convert.UrlOf:
        async def url(info: ArtifactInfo) -> str:
            if info.uri.startswith("s3://"):
                return await self.client.artifact_url(info.ref(), 3600)
            name = quote(info.name, safe="/")
            return f"{self._base_url(context)}/v1/jobs/{job_id}/artifacts/{name}"

        return url

    async def _snapshot(self, job: JobStatus, context: ServerCallContext) -> Task:
        envelopes = [
            item
            async for item in self.client.events(job.id, follow=False)
            if item["seq"] <= job.last_seq
        ]
        text = convert.streamed_text(envelopes)
        return await convert.snapshot(job, text, self._url_of(job.id, context))

    # --- A2A methods ---

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        job_id = await self._submit(params, context)
        caller = self._caller(context)
        if not params.configuration.return_immediately:
            with contextlib.suppress(TimeoutError, SkillqError):
                await self.client.result(job_id, timeout=self._settings.server_max_wait)
        return await self._snapshot(await self._visible(job_id, caller), context)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        try:
            self._streams.check(self._caller(context).subject)  # before a job is made
        except SkillqError as exc:
            raise a2a_error(exc) from exc
        job_id = await self._submit(params, context)
        async for event in self._follow(job_id, context):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        async for event in self._follow(params.id, context):
            yield event

    async def _follow(self, job_id: str, context: ServerCallContext) -> AsyncGenerator[Event]:
        """A snapshot, then every event after it, to the end of the job."""
        caller = self._caller(context)
        try:  # counted before anything is read (see streams.open_stream)
            lease, job = await open_stream(self._streams, self.client, caller, job_id)
        except JobNotFound:
            raise a2a_errors.TaskNotFoundError(message=f"task not found: {job_id}") from None
        except SkillqError as exc:
            raise a2a_error(exc) from exc
        try:
            async for event in self._events(job, context):
                yield event
        except JobNotFound:
            raise a2a_errors.TaskNotFoundError(
                message=f"task {job_id} is gone: its record expired or Redis lost it"
            ) from None
        finally:
            lease.release()

    async def _events(self, job: JobStatus, context: ServerCallContext) -> AsyncGenerator[Event]:
        job_id = job.id
        snapshot = await self._snapshot(job, context)
        yield snapshot
        if job.finished:
            return
        text_started = any(item.artifact_id == convert.TEXT_ARTIFACT for item in snapshot.artifacts)
        url_of = self._url_of(job_id, context)

        async def result() -> Any:
            return (await self.client.status(job_id)).result

        async for envelope in self.client.events(job_id, after=job.last_seq, follow=True):
            for update in await convert.updates(
                envelope, job_id, job_id, text_started=text_started, url_of=url_of, result=result
            ):
                yield update
                if convert.is_final(update):
                    return
            text_started = text_started or envelope.get("kind") == "text_delta"

    async def _submit(self, params: SendMessageRequest, context: ServerCallContext) -> str:
        caller = self._caller(context)
        message = params.message
        if message.task_id:  # continuing a task: the answer to what it asks
            await self._visible(message.task_id, caller)
            try:
                await self.client.respond(message.task_id, _args_of(message))
            except SkillqError as exc:
                raise a2a_error(exc) from exc
            return str(message.task_id)
        skill = _skill_named(params) or await self._only_skill()
        args = _args_of(message)
        grant = _meta(params, "grant")
        # A duplicate messageId from the same caller names the same job: SUBMIT
        # never records (or queues) one id twice.
        job_id = caller.job_id(MESSAGE_IDS, message.message_id) if message.message_id else None
        try:
            caller.require((await skill_info(self.client, skill)).scopes)
            options = SubmitOptions(
                skill, args, auth=caller.claims(), job_id=job_id, owner=caller.subject, grant=grant
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
        job = await self._visible(params.id, self._caller(context))
        return await self._snapshot(job, context)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        caller = self._caller(context)
        size = params.page_size or 50
        if not 1 <= size <= 100:
            raise a2a_errors.InvalidParamsError(message="page_size must be 1..100")
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
        if caller.admin:  # every caller's tasks, as the job API lists them for admin
            page = await self.client.jobs(
                limit=size, cursor=None if before is None else repr(before)
            )
            jobs = page.jobs
        else:
            jobs = await self.client.owned_jobs(caller.subject, limit=size, before=before)
        # The page goes on from the last job read, whatever the status filter kept.
        last = jobs[-1].created_at if len(jobs) == size else None
        if params.status:
            wanted = convert.JOB_STATES.get(params.status)
            jobs = [job for job in jobs if job.state == wanted]
        tasks = [await convert.snapshot(job, "", self._url_of(job.id, context)) for job in jobs]
        return ListTasksResponse(
            tasks=tasks,
            next_page_token="" if last is None else repr(last),
            page_size=size,
            total_size=len(tasks),
        )

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        caller = self._caller(context)
        job = await self._visible(params.id, caller)
        if job.finished:
            raise a2a_errors.TaskNotCancelableError(
                message=f"task {job.id} already ended: {job.state}"
            )
        await self.client.cancel(job.id)
        with contextlib.suppress(TimeoutError, SkillqError):
            await asyncio.wait_for(self.client.result(job.id), self._settings.server_max_wait)
        return await self._snapshot(await self.client.status(job.id), context)

    # --- not offered ---

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise a2a_errors.ExtendedAgentCardNotConfiguredError()


def _meta(params: SendMessageRequest, key: str) -> str | None:
    """A string in the message's metadata, or the request's."""
    for holder in (params.message.metadata, params.metadata):
        value = convert.plain(holder).get(key) if holder.fields else None
        if isinstance(value, str) and value:
            return value
    return None


def _skill_named(params: SendMessageRequest) -> str | None:
    return _meta(params, "skill")


def _args_of(message: Message) -> dict[str, Any]:
    """The args: the message's data part (an object), or its text as ``{"text": ...}``."""
    texts = []
    for part in message.parts:
        if part.HasField("data"):
            value = convert.plain(part.data)
            if not isinstance(value, dict):
                raise a2a_errors.InvalidParamsError(message="the data part must be a JSON object")
            return value
        if part.HasField("text"):
            texts.append(part.text)
    return {"text": "\n".join(texts)} if texts else {}
