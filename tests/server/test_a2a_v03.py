"""A2A 0.3 clients on the same endpoint: requests with no ``A2A-Version`` header
(which the spec says is 0.3) in 0.3's wire format, method names and states,
written out as JSON here so nothing of a client library stands in between."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.server.test_a2a_server import OTHER, TOKEN, TOKENS
from worker.embedded import HttpServerProcess, WorkerProcess


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> Iterator[str]:
    env = {
        **stack_env,
        "SKILLQ_SKILLS": "tasks,http_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
        "SKILLQ_SERVER_MAX_WAIT": "30",
    }
    worker = start_worker(pool="threads", concurrency=4, queues="default,http", env=env)
    with HttpServerProcess(env) as http:
        yield http.url
    worker.stop(timeout=10)


def call(url: str, method: str, params: dict[str, Any], token: str = TOKEN) -> dict[str, Any]:
    """One 0.3 JSON-RPC call (no A2A-Version header) and its answer, or the first
    event of the stream it opened."""
    body = {"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params}
    response = httpx.post(
        url + "/a2a/jsonrpc", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    if response.headers["content-type"].startswith("text/event-stream"):  # a stream's error
        first = next(line for line in response.text.splitlines() if line.startswith("data:"))
        answered: dict[str, Any] = json.loads(first[len("data:") :])
    else:
        answered = response.json()
    assert answered["id"] == "req-1", answered
    return answered


def stream(url: str, method: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """A 0.3 streaming call's events (each a JSON-RPC response), to the stream's end."""
    body = {"jsonrpc": "2.0", "id": "req-2", "method": method, "params": params}
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
    events = []
    with httpx.stream(
        "POST", url + "/a2a/jsonrpc", json=body, headers=headers, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[len("data:") :]))
    return events


def message(skill: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A 0.3 message: ``kind`` tags, a lower-case role, a data part."""
    return {
        "message": {
            "kind": "message",
            "messageId": uuid.uuid4().hex,
            "role": "user",
            "parts": [{"kind": "data", "data": data}],
            "metadata": {"skill": skill},
            **extra,
        }
    }


def test_the_card_offers_both_versions_on_one_url(server: str) -> None:
    card = httpx.get(server + "/.well-known/agent-card.json").json()
    endpoint = server + "/a2a/jsonrpc"
    versions = {(i["url"], i["protocolVersion"]) for i in card["supportedInterfaces"]}
    assert versions == {(endpoint, "1.0"), (endpoint, "0.3")}
    # What a 0.3 client reads: the top-level url, transport and version.
    assert card["url"] == endpoint
    assert card["preferredTransport"] == "JSONRPC"
    assert card["protocolVersion"] == "0.3"


def test_message_send_runs_a_job_in_the_03_format(server: str) -> None:
    answered = call(server, "message/send", message("echo", {"message": "from 0.3"}))
    task = answered["result"]
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed", task
    [result] = [a for a in task["artifacts"] if a["name"] == "result"]
    assert result["parts"] == [{"kind": "data", "data": {"message": "from 0.3"}}]
    fetched = call(server, "tasks/get", {"id": task["id"]})["result"]
    assert fetched["id"] == task["id"] and fetched["contextId"] == task["contextId"]
    assert fetched["status"]["state"] == "completed"
    stranger = call(server, "tasks/get", {"id": task["id"]}, token=OTHER)
    assert stranger["error"]["code"] == -32001


def test_a_03_task_asks_and_is_answered(server: str) -> None:
    context = f"v03-{uuid.uuid4()}"
    asked = call(server, "message/send", message("asks_to_go", {}, contextId=context))["result"]
    assert asked["status"]["state"] == "input-required", asked
    assert asked["contextId"] == context
    assert asked["status"]["message"]["parts"] == [{"kind": "text", "text": "go on?"}]
    reply = message("asks_to_go", {"go": True}, taskId=asked["id"], contextId=context)
    done = call(server, "message/send", reply)["result"]
    assert done["id"] == asked["id"] and done["status"]["state"] == "completed", done
    history = call(server, "tasks/get", {"id": asked["id"], "historyLength": 2})["result"]
    assert [item["role"] for item in history["history"]] == ["agent", "user"]
    again = call(server, "message/send", message("asks_to_go", {"go": True}, taskId=asked["id"]))
    assert again["error"]["code"] == -32004  # it has ended


def test_message_stream_sends_0_3_events_to_the_end(server: str) -> None:
    events = stream(server, "message/stream", message("story", {"words": 5, "delay": 0}))
    results = [event["result"] for event in events]
    assert all(event["id"] == "req-2" for event in events)
    assert results[0]["kind"] == "task"
    kinds = {result["kind"] for result in results[1:]}
    assert kinds == {"status-update", "artifact-update"}, kinds
    assert results[-1]["kind"] == "status-update" and results[-1]["final"] is True
    assert results[-1]["status"]["state"] == "completed"


def test_a_03_stream_ends_where_the_task_asks(server: str) -> None:
    events = stream(server, "message/stream", message("asks_to_go", {}))
    last = events[-1]["result"]
    assert last["kind"] == "status-update" and last["status"]["state"] == "input-required"
    cancelled = call(server, "tasks/cancel", {"id": last["taskId"]})["result"]
    assert cancelled["status"]["state"] == "canceled"


def test_03_params_that_do_not_fit_are_invalid_params_and_start_nothing(server: str) -> None:
    def jobs() -> int:
        listed = httpx.get(server + "/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        return len(listed.json()["jobs"])

    before = jobs()
    no_id = message("echo", {"message": "no id"})
    del no_id["message"]["messageId"]
    no_parts = message("echo", {"message": "no parts"})
    no_parts["message"]["parts"] = []
    for method in ("message/send", "message/stream"):
        for params in (no_id, no_parts, {"message": {"kind": "message"}}, {"": "not_a_dict"}):
            answered = call(server, method, params)
            assert answered["error"]["code"] == -32602, (method, params, answered)
    assert call(server, "tasks/get", {"historyLength": 2})["error"]["code"] == -32602  # no id
    # Without a request id too, as the 1.0 methods are answered.
    body = {"jsonrpc": "2.0", "method": "message/send", "params": {"": "not_a_dict"}}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answered = httpx.post(server + "/a2a/jsonrpc", json=body, headers=headers).json()
    assert answered["error"]["code"] == -32602 and answered["id"] is None, answered
    assert jobs() == before
