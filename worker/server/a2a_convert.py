"""skillq jobs as A2A tasks: states, snapshots and stream updates.

A job's events become A2A updates one for one, each carrying the event's
``seq`` in its metadata: ``status`` and ``progress`` events become status
updates, streamed text an appended ``text`` artifact, artifacts URL parts,
and a succeeded job's result a ``result`` artifact with one data part.
A snapshot (a :class:`Task`) holds everything up to a ``seq`` (in its
metadata), so a subscriber that starts from a snapshot and applies the
updates after it has missed nothing and seen nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format, struct_pb2

from ..store.job_status import ArtifactInfo, JobStatus

Envelope = dict[str, Any]
UrlOf = Callable[[ArtifactInfo], Awaitable[str]]

STATES: dict[str, TaskState] = {
    "queued": TaskState.TASK_STATE_SUBMITTED,
    "running": TaskState.TASK_STATE_WORKING,
    "retrying": TaskState.TASK_STATE_WORKING,
    "input_required": TaskState.TASK_STATE_INPUT_REQUIRED,
    "succeeded": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
}
JOB_STATES = {value: key for key, value in STATES.items() if key != "retrying"}
TEXT_ARTIFACT = "text"
RESULT_ARTIFACT = "result"


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def data_part(value: Any) -> Part:
    wrapped = struct_pb2.Value()
    json_format.ParseDict(value, wrapped)
    return Part(data=wrapped, media_type="application/json")


def plain(value: Any) -> Any:
    """A protobuf Struct/Value as plain JSON values."""
    return json_format.MessageToDict(value)


def timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def agent_text(task_id: str, text: str, context_id: str = "") -> Message:
    return Message(
        message_id=f"{task_id}-status",
        task_id=task_id,
        context_id=context_id,
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
    )


def status_of(job: JobStatus, at: float | None = None) -> TaskStatus:
    status = TaskStatus(state=STATES.get(job.state, TaskState.TASK_STATE_WORKING))
    when = timestamp(at or job.finished_at or job.started_at or job.created_at)
    if when is not None:
        status.timestamp.FromDatetime(when)
    if job.error is not None:
        status.message.CopyFrom(
            agent_text(job.id, f"{job.error.type}: {job.error.message} ({job.error.code})")
        )
    elif job.question is not None:  # input-required: the question is the status message
        status.message.CopyFrom(agent_text(job.id, job.question.question))
    elif job.progress and job.state in ("running", "queued"):
        status.message.CopyFrom(agent_text(job.id, job.progress))
    return status


async def file_artifact(info: ArtifactInfo, url_of: UrlOf) -> Artifact:
    return Artifact(
        artifact_id=info.name,
        name=info.name,
        parts=[Part(url=await url_of(info), filename=info.name, media_type=info.mime_type)],
        metadata=struct({"size_bytes": info.size_bytes}),
    )


def result_artifact(value: Any) -> Artifact:
    return Artifact(artifact_id=RESULT_ARTIFACT, name=RESULT_ARTIFACT, parts=[data_part(value)])


async def snapshot(
    job: JobStatus,
    text: str,
    url_of: UrlOf,
    *,
    context_id: str | None = None,
    history: Iterable[Message] = (),
    with_artifacts: bool = True,
) -> Task:
    """The task as of the job's record (``seq`` = ``job.last_seq``), with the text
    streamed so far (``with_artifacts=False``: none, as ListTasks leaves them out
    unless asked, so no artifact URL is signed for nothing)."""
    artifacts = [await file_artifact(info, url_of) for info in job.artifacts]
    if text:
        artifacts.append(
            Artifact(artifact_id=TEXT_ARTIFACT, name=TEXT_ARTIFACT, parts=[Part(text=text)])
        )
    if job.state == "succeeded":
        artifacts.append(result_artifact(job.result))
    context = context_id or job.id
    status = status_of(job)
    if status.HasField("message"):
        status.message.context_id = context
    return Task(
        id=job.id,
        context_id=context,
        status=status,
        artifacts=artifacts if with_artifacts else [],
        history=history,
        metadata=struct({"seq": job.last_seq, "skill": job.skill or "", "state": job.state}),
    )


def streamed_text(envelopes: Iterable[Envelope]) -> str:
    return "".join(
        str(item.get("payload", {}).get("text", ""))
        for item in envelopes
        if item.get("kind") == "text_delta"
    )


async def updates(
    envelope: Envelope,
    job_id: str,
    context_id: str,
    *,
    text_started: bool,
    url_of: UrlOf,
    result: Callable[[], Awaitable[Any]],
) -> list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
    """The A2A updates one job event becomes."""
    kind, payload, seq = envelope.get("kind"), envelope.get("payload") or {}, envelope["seq"]
    meta = struct({"seq": seq, "kind": kind})
    if kind == "text_delta":
        artifact = Artifact(
            artifact_id=TEXT_ARTIFACT,
            name=TEXT_ARTIFACT,
            parts=[Part(text=str(payload.get("text", "")))],
        )
        return [
            TaskArtifactUpdateEvent(
                task_id=job_id,
                context_id=context_id,
                artifact=artifact,
                append=text_started,
                metadata=meta,
            )
        ]
    if kind == "artifact":
        info = ArtifactInfo(
            name=str(payload.get("name", "")),
            uri=str(payload.get("uri", "")),
            mime_type=str(payload.get("mime_type", "application/octet-stream")),
            size_bytes=int(payload.get("size_bytes", 0)),
            created_at=float(envelope.get("ts", 0)),
        )
        return [
            TaskArtifactUpdateEvent(
                task_id=job_id,
                context_id=context_id,
                artifact=await file_artifact(info, url_of),
                metadata=meta,
            )
        ]
    if kind == "status":
        state = str(payload.get("state", "running"))
        found: list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent] = []
        if state == "succeeded":
            found.append(
                TaskArtifactUpdateEvent(
                    task_id=job_id,
                    context_id=context_id,
                    artifact=result_artifact(await result()),
                    last_chunk=True,
                    metadata=meta,
                )
            )
        status = TaskStatus(state=STATES.get(state, TaskState.TASK_STATE_WORKING))
        status.timestamp.FromDatetime(datetime.fromtimestamp(float(envelope.get("ts", 0)), UTC))
        error, question = payload.get("error"), payload.get("question")
        if isinstance(question, str):
            status.message.CopyFrom(agent_text(job_id, question, context_id))
        if isinstance(error, dict):
            status.message.CopyFrom(
                agent_text(
                    job_id,
                    f"{error.get('type')}: {error.get('message')} ({error.get('code')})",
                    context_id,
                )
            )
        found.append(
            TaskStatusUpdateEvent(
                task_id=job_id, context_id=context_id, status=status, metadata=meta
            )
        )
        return found
    status = TaskStatus(state=TaskState.TASK_STATE_WORKING)
    if kind == "progress":
        status.message.CopyFrom(agent_text(job_id, str(payload.get("message", "")), context_id))
    else:
        message = agent_text(job_id, "", context_id)
        del message.parts[:]
        message.parts.append(data_part({"kind": kind, "payload": payload}))
        status.message.CopyFrom(message)
    return [
        TaskStatusUpdateEvent(task_id=job_id, context_id=context_id, status=status, metadata=meta)
    ]


TERMINAL = frozenset(
    {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED}
)
INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED})


def is_final(update: Any, *, interrupted: bool = False) -> bool:
    """An update after which the stream ends: a terminal state, and with
    ``interrupted`` (a send's stream) also one that waits on the client."""
    ends = TERMINAL | INTERRUPTED if interrupted else TERMINAL
    return isinstance(update, TaskStatusUpdateEvent) and update.status.state in ends
