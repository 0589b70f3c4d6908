"""``ctx.call`` to any A2A agent over HTTP, with the ``a2a-sdk`` client.

The call sends one message (the args as a data part, the skill in the
message metadata key ``skill``, a workspace grant in ``grant``) without
waiting for the end, then follows the task over ``SubscribeToTask`` (or
polls ``GetTask`` when the agent does not stream) until a terminal state.
At the call's timeout, or when the calling job is cancelled, it sends
``CancelTask``. The task's final state, its ``result`` data artifact (or
its last data or text part), and its file artifacts fill the
:class:`~worker.interface.a2a.CallResult`.

a2a-sdk is imported on the first call, so workers that never call over HTTP
do not load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..interface.a2a import CallResult
from ..interface.artifact_ref import ArtifactRef

TERMINAL = {
    "completed": "succeeded",
    "failed": "failed",
    "canceled": "cancelled",
    "rejected": "failed",
}
POLL_SECONDS = 0.5


async def with_trace_context(request: Any) -> None:
    """Carry the calling job's trace to the agent (W3C ``traceparent``); nothing
    is added when no span is recording."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    request.headers.update(carrier)


class HttpA2AClient:
    """Calls A2A agents at ``http(s)://`` URLs (their agent card's base URL)."""

    def __init__(
        self, *, default_timeout: float = 300.0, headers: Mapping[str, str] | None = None
    ) -> None:
        self._default_timeout = default_timeout
        self._headers = dict(headers or {})

    async def call(
        self,
        target: str,
        skill: str,
        *,
        args: dict[str, Any] | None = None,
        grant: str | None = None,
        timeout: float | None = None,
        budget: Mapping[str, float] | None = None,  # a remote agent's spending is its own
    ) -> CallResult:
        if not target.startswith(("http://", "https://")):
            return CallResult(ok=False, error=f"an A2A target is an http(s) URL, not {target!r}")
        try:
            import httpx
            from a2a.client import ClientConfig, create_client
        except ImportError as exc:  # pragma: no cover - a2a-sdk is a dependency
            return CallResult(ok=False, error=f"calling A2A agents needs a2a-sdk: {exc}")
        wait = self._default_timeout if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + wait
        http = httpx.AsyncClient(
            headers=self._headers,
            timeout=min(60.0, max(wait, 1.0)),
            event_hooks={"request": [with_trace_context]},
        )
        task_id: str | None = None
        client: Any = None
        try:
            try:
                client = await asyncio.wait_for(
                    create_client(target, ClientConfig(streaming=True, httpx_client=http)),
                    timeout=max(0.001, deadline - time.monotonic()),
                )
                task = await asyncio.wait_for(
                    self._start(client, skill, args or {}, grant),
                    timeout=max(0.001, deadline - time.monotonic()),
                )
            except TimeoutError:
                return CallResult(ok=False, error=f"timed out after {wait:g} s reaching {target}")
            except Exception as exc:
                return CallResult(ok=False, error=f"cannot call {target}: {_describe(exc)}")
            task_id = task.id
            try:
                task = await asyncio.wait_for(
                    self._until_end(client, task), timeout=max(0.001, deadline - time.monotonic())
                )
            except TimeoutError:
                await self._cancel(client, task_id)
                return CallResult(
                    ok=False,
                    error=f"timed out after {wait:g} s; the remote task was cancelled",
                    task_id=task_id,
                    state="cancelled",
                )
            except asyncio.CancelledError:
                await asyncio.shield(self._cancel(client, task_id))  # the caller was cancelled
                raise
            except Exception as exc:
                return CallResult(
                    ok=False,
                    error=f"lost task {task_id} at {target}: {_describe(exc)}",
                    task_id=task_id,
                )
            return _result_of(task)
        finally:
            with contextlib.suppress(Exception):
                if client is not None:
                    await client.close()
            await http.aclose()

    async def _start(self, client: Any, skill: str, args: dict[str, Any], grant: str | None) -> Any:
        from a2a.types.a2a_pb2 import (
            Message,
            Part,
            Role,
            SendMessageConfiguration,
            SendMessageRequest,
        )
        from google.protobuf import json_format, struct_pb2

        data = struct_pb2.Value()
        json_format.ParseDict(args, data)
        metadata = struct_pb2.Struct()
        metadata.update({"skill": skill, **({"grant": grant} if grant else {})})
        request = SendMessageRequest(
            message=Message(
                message_id=uuid.uuid4().hex,
                role=Role.ROLE_USER,
                parts=[Part(data=data, media_type="application/json")],
                metadata=metadata,
            ),
            configuration=SendMessageConfiguration(return_immediately=True),
        )
        task = None
        async for response in client.send_message(request):
            if response.HasField("task"):
                task = response.task
                break
            if response.HasField("message"):
                # An agent that answers with a message at once: no task to follow.
                from a2a.types.a2a_pb2 import Task, TaskState, TaskStatus

                task = Task(id="", status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED))
                task.status.message.CopyFrom(response.message)
                break
        if task is None:
            raise RuntimeError("the agent answered without a task")
        return task

    async def _until_end(self, client: Any, task: Any) -> Any:
        """Follow the task to a terminal state: streamed when offered, else polled."""
        from a2a.types.a2a_pb2 import GetTaskRequest, SubscribeToTaskRequest

        if _state(task) in TERMINAL or not task.id:
            return task
        with contextlib.suppress(Exception):
            async for response in client.subscribe(SubscribeToTaskRequest(id=task.id)):
                if (
                    response.HasField("status_update")
                    and _state_name(response.status_update.status.state) in TERMINAL
                ):
                    break
        while True:
            current = await client.get_task(GetTaskRequest(id=task.id))
            if _state(current) in TERMINAL:
                return current
            await asyncio.sleep(POLL_SECONDS)  # an agent that does not stream: poll

    async def _cancel(self, client: Any, task_id: str | None) -> None:
        if not task_id:
            return
        from a2a.types.a2a_pb2 import CancelTaskRequest

        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.cancel_task(CancelTaskRequest(id=task_id)), 10)


def _state_name(value: int) -> str:
    from a2a.types.a2a_pb2 import TaskState

    return str(TaskState.Name(value)).removeprefix("TASK_STATE_").lower()


def _state(task: Any) -> str:
    return _state_name(task.status.state)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _result_of(task: Any) -> CallResult:
    from google.protobuf import json_format

    state = TERMINAL.get(_state(task), _state(task))
    output: Any = None
    artifacts: list[ArtifactRef] = []
    for artifact in task.artifacts:
        for part in artifact.parts:
            if part.HasField("url"):
                artifacts.append(
                    ArtifactRef(
                        name=part.filename or artifact.name,
                        uri=part.url,
                        mime_type=part.media_type or "application/octet-stream",
                        size_bytes=int(
                            json_format.MessageToDict(artifact.metadata).get("size_bytes", 0)
                        ),
                    )
                )
            elif part.HasField("data") and (artifact.name == "result" or output is None):
                output = json_format.MessageToDict(part.data)
            elif part.HasField("text") and artifact.name != "text" and output is None:
                output = part.text
    message = task.status.message
    said = " ".join(part.text for part in message.parts if part.HasField("text"))
    if output is None and said and state == "succeeded":
        output = said
    if state == "succeeded":
        return CallResult(
            ok=True, output=output, task_id=task.id or None, state=state, artifacts=artifacts
        )
    return CallResult(
        ok=False,
        error=f"the remote task ended {state}" + (f": {said}" if said else ""),
        output=output,
        task_id=task.id or None,
        state=state,
        artifacts=artifacts,
    )
