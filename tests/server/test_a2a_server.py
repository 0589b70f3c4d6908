"""skillq as an A2A agent: the ``a2a-sdk`` client (not skillq's code) against
real uvicorn servers in front of real workers. Two server processes share
nothing but Redis: a stream started on one resumes on the other."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from google.protobuf import json_format, struct_pb2

from worker.embedded import HttpServerProcess, WorkerProcess, wait_for
from worker.server.principals import new_token, token_hash

TOKEN, OTHER = new_token(), new_token()
TOKENS = [
    {"sha256": token_hash(TOKEN), "subject": "agent-user", "scopes": []},
    {"sha256": token_hash(OTHER), "subject": "someone-else", "scopes": []},
]


@pytest.fixture(scope="module")
def servers(
    stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> Iterator[tuple[str, str]]:
    env = {**stack_env, "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS), "SKILLQ_SERVER_MAX_WAIT": "30"}
    worker = start_worker(pool="threads", concurrency=4, queues="default", env=env)
    with HttpServerProcess(env) as first, HttpServerProcess(env) as second:
        yield first.url, second.url
    worker.stop(timeout=10)


def message(skill: str, args: dict[str, Any], message_id: str | None = None) -> SendMessageRequest:
    data = struct_pb2.Value()
    json_format.ParseDict(args, data)
    metadata = struct_pb2.Struct()
    metadata.update({"skill": skill})
    return SendMessageRequest(
        message=Message(
            message_id=message_id or uuid.uuid4().hex,
            role=Role.ROLE_USER,
            parts=[Part(data=data)],
            metadata=metadata,
        )
    )


async def connect(url: str, *, streaming: bool = True, token: str = TOKEN) -> Any:
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return await create_client(url, ClientConfig(streaming=streaming, httpx_client=http))


def data_of(task: Task, name: str) -> Any:
    for artifact in task.artifacts:
        if artifact.name == name:
            return json_format.MessageToDict(artifact.parts[0].data)
    return None


def text_of(task: Task) -> str:
    return "".join(a.parts[0].text for a in task.artifacts if a.name == "text")


def test_the_agent_card_lists_the_skills(servers: tuple[str, str]) -> None:
    card = httpx.get(servers[0] + "/.well-known/agent-card.json").json()
    names = {skill["id"] for skill in card["skills"]}
    assert {"echo", "story", "sleepy"} <= names
    assert card["supportedInterfaces"][0]["url"] == servers[0] + "/a2a/jsonrpc"
    assert card["capabilities"]["streaming"] is True
    [extension] = card["capabilities"]["extensions"]
    assert extension["params"]["skills"]["echo"]["properties"]["message"]["type"] == "string"
    unauthenticated = httpx.post(servers[0] + "/a2a/jsonrpc", json={})
    assert unauthenticated.status_code == 401


def test_send_message_runs_a_job_and_returns_its_result(servers: tuple[str, str]) -> None:
    async def scenario() -> None:
        client = await connect(servers[0], streaming=False)
        request = message("echo", {"message": "over a2a"})
        responses = [item async for item in client.send_message(request)]
        task = responses[-1].task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED, task
        assert data_of(task, "result") == {"message": "over a2a"}
        again = [item async for item in client.send_message(request)]  # the same messageId
        assert again[-1].task.id == task.id
        fetched = await client.get_task(GetTaskRequest(id=task.id))
        assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
        listed = await client.list_tasks(ListTasksRequest(page_size=10))
        assert task.id in [item.id for item in listed.tasks]
        report = [item async for item in client.send_message(message("report", {}))][-1].task
        [file] = [a for a in report.artifacts if a.name == "report.md"]
        assert file.parts[0].media_type == "text/markdown"
        assert "Signature=" in file.parts[0].url  # presigned on S3
        assert httpx.get(file.parts[0].url).text.startswith("# report")
        stranger = await connect(servers[0], streaming=False, token=OTHER)
        with pytest.raises(Exception, match="not found"):
            await stranger.get_task(GetTaskRequest(id=task.id))
        await client.close()
        await stranger.close()

    asyncio.run(scenario())


def test_a_stream_resumes_on_another_server_with_no_gap(servers: tuple[str, str]) -> None:
    async def scenario() -> None:
        first = await connect(servers[0])
        # Long enough to outlast the reconnect: a task that has ended cannot be
        # subscribed to (GetTask reads it).
        request = message("story", {"words": 60, "delay": 0.05})
        received: list[StreamResponse] = []
        async for item in first.send_message(request):
            received.append(item)
            if sum(1 for r in received if r.HasField("artifact_update")) >= 5:
                break  # drop the connection mid-stream
        await first.close()
        snapshot = received[0].task
        task_id = snapshot.id
        seqs = [
            int(json_format.MessageToDict(update.metadata)["seq"])
            for update in (
                r.artifact_update if r.HasField("artifact_update") else r.status_update
                for r in received[1:]
            )
        ]
        assert seqs == sorted(set(seqs)), seqs
        second = await connect(servers[1])
        resumed = [item async for item in second.subscribe(SubscribeToTaskRequest(id=task_id))]
        await second.close()
        start = resumed[0].task
        base = int(json_format.MessageToDict(start.metadata)["seq"])
        assert base >= seqs[-1]  # the snapshot covers what the first connection saw
        after = [
            int(json_format.MessageToDict(u.metadata)["seq"])
            for u in (
                r.artifact_update if r.HasField("artifact_update") else r.status_update
                for r in resumed[1:]
            )
        ]
        # One event may become two updates (a result and the final status): same seq.
        distinct = list(dict.fromkeys(after))
        assert distinct == list(range(base + 1, base + 1 + len(distinct))), after
        text = text_of(start) + "".join(
            r.artifact_update.artifact.parts[0].text
            for r in resumed[1:]
            if r.HasField("artifact_update") and r.artifact_update.artifact.name == "text"
        )
        final = resumed[-1].status_update.status.state
        assert final == TaskState.TASK_STATE_COMPLETED
        results = [
            json_format.MessageToDict(r.artifact_update.artifact.parts[0].data)
            for r in resumed
            if r.HasField("artifact_update") and r.artifact_update.artifact.name == "result"
        ]
        assert results and text.split() == results[-1]["text"].split()

    asyncio.run(scenario())


def test_cancel_task_cancels_the_job(servers: tuple[str, str]) -> None:
    async def start() -> str:
        client = await connect(servers[0], streaming=False)
        request = message("sleepy", {"seconds": 60})
        request.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
        task = [item async for item in client.send_message(request)][-1].task
        await client.close()
        assert task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
        return str(task.id)

    async def cancel(task_id: str) -> Task:
        client = await connect(servers[0], streaming=False)
        try:
            cancelled: Task = await client.cancel_task(CancelTaskRequest(id=task_id))
            return cancelled
        finally:
            await client.close()

    task_id = asyncio.run(start())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wait_for(
        lambda: (
            httpx.get(f"{servers[0]}/v1/jobs/{task_id}", headers=headers).json()["state"]
            == "running"
        ),
        timeout=30,
    )
    assert asyncio.run(cancel(task_id)).status.state == TaskState.TASK_STATE_CANCELED
