"""A2A's input-required, checked with a2a-sdk's client: a job that asks is
TASK_STATE_INPUT_REQUIRED with its question as the status message, and a
message carrying the task's id answers it and the task goes on; another
caller cannot answer it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from a2a.types.a2a_pb2 import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)
from google.protobuf import json_format, struct_pb2

from tests.server.test_a2a_server import OTHER, TOKEN, TOKENS, connect, data_of, message
from worker.embedded import HttpServerProcess, WorkerProcess, wait_for


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> Iterator[str]:
    env = {
        **stack_env,
        "SKILLQ_SKILLS": "tasks,http_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
        "SKILLQ_SERVER_MAX_WAIT": "30",
    }
    worker = start_worker(pool="threads", concurrency=1, queues="http", env=env)
    with HttpServerProcess(env) as http:
        yield http.url
    worker.stop(timeout=10)


def answer(task_id: str, value: dict[str, object]) -> SendMessageRequest:
    data = struct_pb2.Value()
    json_format.ParseDict(value, data)
    return SendMessageRequest(
        message=Message(
            message_id=uuid.uuid4().hex,
            task_id=task_id,
            role=Role.ROLE_USER,
            parts=[Part(data=data)],
        )
    )


def test_a_task_that_asks_is_continued_by_a_message_with_its_id(server: str) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=False)
        first = message("asks_to_go", {})
        first.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
        task = [item async for item in client.send_message(first)][-1].task

        def asking() -> bool:
            status = httpx.get(
                f"{server}/v1/jobs/{task.id}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            return bool(status.json().get("state") == "input_required")

        wait_for(asking, 30, "the task to ask")
        waiting = await client.get_task(GetTaskRequest(id=task.id))
        assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert waiting.status.message.parts[0].text == "go on?"
        stranger = await connect(server, streaming=False, token=OTHER)
        with pytest.raises(Exception, match="not found"):
            [item async for item in stranger.send_message(answer(task.id, {"go": True}))]
        with pytest.raises(Exception, match="go"):
            [item async for item in client.send_message(answer(task.id, {"go": "sure"}))]
        done = [item async for item in client.send_message(answer(task.id, {"go": True}))][-1].task
        assert done.id == task.id
        assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
        assert data_of(done, "result") is True
        await client.close()
        await stranger.close()

    asyncio.run(scenario())
