"""A2A 1.0 as the spec says, checked with a2a-sdk's own client (and raw JSON-RPC
where a body is one the client cannot send): required fields are validated,
a send returns (or its stream ends) where the task waits for input, a client's
contextId groups tasks, and the smaller rules of GetTask and ListTasks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from a2a.types.a2a_pb2 import (
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
from a2a.utils.errors import A2AError

from tests.server.test_a2a_input import answer
from tests.server.test_a2a_server import OTHER, TOKEN, TOKENS, connect, message
from worker.embedded import HttpServerProcess, WorkerProcess
from worker.server.principals import new_token, token_hash

FRESH = new_token()  # a caller with no jobs but those its own requests make
MAX_WAIT = 30


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> Iterator[str]:
    tokens = [*TOKENS, {"sha256": token_hash(FRESH), "subject": "fresh", "scopes": []}]
    env = {
        **stack_env,
        "SKILLQ_SKILLS": "tasks,http_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(tokens),
        "SKILLQ_SERVER_MAX_WAIT": str(MAX_WAIT),
    }
    worker = start_worker(pool="threads", concurrency=4, queues="default,http", env=env)
    with HttpServerProcess(env) as http:
        yield http.url
    worker.stop(timeout=10)


def rpc(url: str, method: str, params: Any, *, token: str = TOKEN) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
    answered: dict[str, Any] = httpx.post(
        url + "/a2a/jsonrpc", json=body, headers=headers, timeout=MAX_WAIT + 30
    ).json()
    return answered


def job_count(url: str, token: str) -> int:
    page = httpx.get(url + "/v1/jobs", headers={"Authorization": f"Bearer {token}"}).json()
    return len(page["jobs"])


def in_context(skill: str, args: dict[str, Any], context_id: str) -> SendMessageRequest:
    request = message(skill, args)
    request.message.context_id = context_id
    return request


async def last_task(client: Any, request: SendMessageRequest) -> Task:
    """The task a send ends with: the response of a blocking send, or a stream's
    snapshot with the status of its last update."""
    received = [item async for item in client.send_message(request)]
    task = Task()
    task.CopyFrom(received[0].task)
    for item in received[1:]:
        if item.HasField("status_update"):
            task.status.CopyFrom(item.status_update.status)
    return task


async def code_of(client: Any, request: SendMessageRequest) -> int:
    """The JSON-RPC error code a send answers (blocking or streaming)."""
    with pytest.raises(A2AError) as raised:
        [item async for item in client.send_message(request)]
    return code_from(raised.value)


def code_from(error: A2AError) -> int:
    from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP

    return JSON_RPC_ERROR_CODE_MAP[type(error)]


@pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])
def test_a_message_without_its_required_fields_is_invalid_params(
    server: str, streaming: bool
) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=streaming, token=FRESH)
        for drop in ("message_id", "role", "parts"):
            request = message("echo", {"message": "incomplete"})
            request.message.ClearField(drop)
            assert await code_of(client, request) == -32602, drop
        await client.close()

    asyncio.run(scenario())
    assert job_count(server, FRESH) == 0  # none of them started a job


@pytest.mark.parametrize("method", ["SendMessage", "SendStreamingMessage"])
def test_bodies_the_client_cannot_send_are_invalid_params(server: str, method: str) -> None:
    for params in (
        {"message": {"kind": "message"}},
        {"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}},
        {"message": {"role": "ROLE_USER", "parts": [{"text": "no id"}]}},
        {"message": {"messageId": "m", "parts": [{"text": "no role"}]}},
        {"": "not_a_dict"},
    ):
        answered = rpc(server, method, params, token=FRESH)  # an error is never a stream
        assert answered["error"]["code"] == -32602, (params, answered)
    assert job_count(server, FRESH) == 0


def test_a_blocking_send_returns_as_soon_as_the_task_asks(server: str) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=False)
        started = time.monotonic()
        task = await last_task(client, message("asks_to_go", {}))
        took = time.monotonic() - started
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, task
        assert task.status.message.parts[0].text == "go on?"
        assert took < MAX_WAIT / 2, f"returned after {took:.1f} s, not when it asked"
        done = await last_task(client, answer(task.id, {"go": True}))  # blocks to the end
        assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
        await client.close()

    asyncio.run(scenario())


def test_a_streaming_send_ends_where_the_task_asks(server: str) -> None:
    async def scenario() -> list[StreamResponse]:
        client = await connect(server, streaming=True)
        try:
            return [item async for item in client.send_message(message("asks_to_go", {}))]
        finally:
            await client.close()

    received = asyncio.run(asyncio.wait_for(scenario(), MAX_WAIT / 2))
    last = received[-1]
    assert last.HasField("status_update"), last
    assert last.status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED


@pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])
def test_a_client_context_groups_its_tasks(server: str, streaming: bool) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=streaming)
        context = f"conversation-{uuid.uuid4()}"
        first = await last_task(client, in_context("echo", {"message": "one"}, context))
        second = await last_task(client, in_context("echo", {"message": "two"}, context))
        elsewhere = await last_task(client, message("echo", {"message": "three"}))
        assert first.id != second.id
        assert first.context_id == second.context_id == context
        assert elsewhere.context_id not in ("", context)
        if streaming:  # every update of the stream names the context too
            request = in_context("story", {"words": 3, "delay": 0}, context)
            received = [item async for item in client.send_message(request)]
            assert received[0].task.context_id == context
            updates = [
                item.status_update if item.HasField("status_update") else item.artifact_update
                for item in received[1:]
            ]
            assert updates and all(update.context_id == context for update in updates)
        listed = await client.list_tasks(ListTasksRequest(context_id=context))
        assert {task.id for task in listed.tasks} >= {first.id, second.id}
        assert elsewhere.id not in {task.id for task in listed.tasks}
        assert all(task.context_id == context for task in listed.tasks)
        stranger = await connect(server, streaming=False, token=OTHER)
        theirs = await stranger.list_tasks(ListTasksRequest(context_id=context))
        assert list(theirs.tasks) == [] and theirs.total_size == 0
        await stranger.close()
        await client.close()

    asyncio.run(scenario())


def test_a_message_naming_a_contexts_waiting_task_continues_it(server: str) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=False)
        context = f"asking-{uuid.uuid4()}"
        asking = await last_task(client, in_context("asks_to_go", {}, context))
        assert asking.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert asking.context_id == context
        wrong = answer(asking.id, {"go": True})
        wrong.message.context_id = "another-context"
        assert await code_of(client, wrong) == -32602  # spec 3.4.3: a mismatch is refused
        reply = answer(asking.id, {"go": True})
        reply.message.context_id = context
        done = await last_task(client, reply)
        assert done.id == asking.id and done.context_id == context
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        await client.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])
def test_a_message_to_an_ended_task_is_unsupported(server: str, streaming: bool) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=streaming)
        ended = await last_task(client, message("echo", {"message": "done"}))
        assert ended.status.state == TaskState.TASK_STATE_COMPLETED
        follow = Message(message_id=uuid.uuid4().hex, task_id=ended.id, role=Role.ROLE_USER)
        follow.parts.append(Part(text="more"))
        assert await code_of(client, SendMessageRequest(message=follow)) == -32004
        if streaming:  # nor can it be subscribed to (spec 1.0, 9.4.6)
            with pytest.raises(A2AError) as raised:
                [item async for item in client.subscribe(SubscribeToTaskRequest(id=ended.id))]
            assert code_from(raised.value) == -32004
        await client.close()

    asyncio.run(scenario())


def test_list_and_get_refuse_out_of_range_sizes(server: str) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=False)
        task = await last_task(client, message("echo", {"message": "sized"}))
        refused: list[Awaitable[Any]] = [
            client.list_tasks(ListTasksRequest(page_size=0)),
            client.list_tasks(ListTasksRequest(page_size=101)),
            client.list_tasks(ListTasksRequest(history_length=-1)),
            client.get_task(GetTaskRequest(id=task.id, history_length=-1)),
        ]
        for call in refused:
            with pytest.raises(A2AError) as raised:
                await call
            assert code_from(raised.value) == -32602
        request = message("echo", {"message": "negative history"})
        request.configuration.CopyFrom(SendMessageConfiguration(history_length=-1))
        assert await code_of(client, request) == -32602
        await client.close()

    asyncio.run(scenario())


def test_a_status_filter_that_is_no_state_is_invalid_params(server: str) -> None:
    for status in ("DONE", 42, True):
        answered = rpc(server, "ListTasks", {"status": status})
        assert answered["error"]["code"] == -32602, (status, answered)
    listed = rpc(server, "ListTasks", {"status": "TASK_STATE_COMPLETED", "pageSize": 5})
    assert all(t["status"]["state"] == "TASK_STATE_COMPLETED" for t in listed["result"]["tasks"])


def test_unoffered_methods_answer_the_errors_the_spec_names(server: str) -> None:
    # Neither is declared in the card's capabilities (spec 1.0, 3.3.4).
    assert rpc(server, "GetExtendedAgentCard", {})["error"]["code"] == -32004
    config = {"taskId": "t", "url": "https://example.com/hook"}
    assert rpc(server, "CreateTaskPushNotificationConfig", config)["error"]["code"] == -32003


def test_a_server_that_checks_no_tokens_claims_no_scheme(stack_env: dict[str, str]) -> None:
    with HttpServerProcess({**stack_env, "SKILLQ_SERVER_TOKENS": ""}) as open_server:
        card = httpx.get(open_server.url + "/.well-known/agent-card.json").json()
    assert "securitySchemes" not in card and "securityRequirements" not in card, card
    assert "security" not in card  # nor in the 0.3 fields


def test_list_tasks_counts_the_total_before_paging(server: str) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=False)
        context = f"paged-{uuid.uuid4()}"
        made = [
            (await last_task(client, in_context("echo", {"message": str(n)}, context))).id
            for n in range(3)
        ]
        first = await client.list_tasks(ListTasksRequest(context_id=context, page_size=2))
        assert first.total_size == 3 and len(first.tasks) == 2 and first.next_page_token
        second = await client.list_tasks(
            ListTasksRequest(context_id=context, page_size=2, page_token=first.next_page_token)
        )
        assert second.total_size == 3 and len(second.tasks) == 1
        assert second.next_page_token == ""
        listed = [task.id for task in [*first.tasks, *second.tasks]]
        assert listed == made[::-1]  # newest first, each once
        await client.close()

    asyncio.run(scenario())


def test_get_task_returns_the_history_the_job_keeps(server: str) -> None:
    async def scenario() -> None:
        client = await connect(server, streaming=False)
        asked = await last_task(client, message("asks_to_go", {}))
        await last_task(client, answer(asked.id, {"go": True}))
        full = await client.get_task(GetTaskRequest(id=asked.id))
        said = [(item.role, item.parts[0].WhichOneof("content")) for item in full.history]
        assert said == [
            (Role.ROLE_USER, "data"),  # the args it was started with
            (Role.ROLE_AGENT, "text"),  # what it asked
            (Role.ROLE_USER, "data"),  # the answer
        ], full.history
        assert full.history[1].parts[0].text == "go on?"
        assert all(item.context_id == full.context_id for item in full.history)
        last = await client.get_task(GetTaskRequest(id=asked.id, history_length=1))
        assert list(last.history) == [full.history[-1]]
        none = await client.get_task(GetTaskRequest(id=asked.id, history_length=0))
        assert list(none.history) == []
        await client.close()

    asyncio.run(scenario())
