"""The HTTP server under attack: two callers who distrust each other, hostile
headers and bodies, and a caller who opens streams until something gives.
Real uvicorn servers in front of a real worker, called over loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from worker.client import SkillClient
from worker.core.errors import JobNotFound
from worker.embedded import HttpServerProcess, WorkerProcess
from worker.server.principals import MESSAGE_IDS, Principal, new_token, token_hash

ALICE, BOB, ADMIN = new_token(), new_token(), new_token()
TOKENS = [
    {"sha256": token_hash(ALICE), "subject": "alice", "scopes": []},
    {"sha256": token_hash(BOB), "subject": "bob", "scopes": []},
    {"sha256": token_hash(ADMIN), "subject": "root", "scopes": ["skillq:admin"]},
]
STREAM_CAP = 4
POLL_SECONDS = 0.05  # between checks of a condition that has a deadline


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def probe_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {
        **stack_env,
        "SKILLQ_SKILLS": "tasks,ext_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
        "SKILLQ_SERVER_MAX_WAIT": "20",
        "SKILLQ_SERVER_MAX_STREAMS_PER_CALLER": str(STREAM_CAP),
    }


@pytest.fixture(scope="module")
def server(
    probe_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> Iterator[HttpServerProcess]:
    worker = start_worker(pool="threads", concurrency=4, queues="default", env=probe_env)
    with HttpServerProcess(probe_env) as process:
        yield process
    worker.stop(timeout=10)


@pytest.fixture(scope="module")
def api(server: HttpServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def submit(api: httpx.Client, token: str, skill: str, args: dict[str, Any], **extra: Any) -> str:
    response = api.post(
        "/v1/jobs", json={"skill": skill, "args": args, **extra}, headers=auth(token)
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def finished(api: httpx.Client, token: str, job_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/jobs/{job_id}/result", params={"wait": 20}, headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- security ---


def test_the_agent_card_names_only_the_address_of_the_request_it_answers(
    server: HttpServerProcess, api: httpx.Client
) -> None:
    """Before: a base URL shared by all requests, overwritten by each one's Host
    header, so an anonymous client could point others' cards (and tokens) at itself."""
    hostile = "127.0.0.1:1"
    stop = threading.Event()

    def poison() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as other:
            while not stop.is_set():
                other.get("/healthz", headers={"Host": hostile})
                other.get("/.well-known/agent-card.json", headers={"Host": hostile})

    poisoners = [threading.Thread(target=poison) for _ in range(2)]
    for thread in poisoners:
        thread.start()
    try:
        urls = set()
        for _ in range(40):
            card = api.get("/.well-known/agent-card.json").json()
            urls.add(card["supportedInterfaces"][0]["url"])
    finally:
        stop.set()
        for thread in poisoners:
            thread.join()
    assert urls == {server.url + "/a2a/jsonrpc"}
    # A request's own Host is only ever shown to that request.
    own = api.get("/.well-known/agent-card.json", headers={"Host": hostile}).json()
    assert own["supportedInterfaces"][0]["url"] == f"http://{hostile}/a2a/jsonrpc"


def test_a_public_url_setting_fixes_the_card_whatever_the_host(
    probe_env: dict[str, str], server: HttpServerProcess
) -> None:
    env = {**probe_env, "SKILLQ_SERVER_PUBLIC_URL": "https://agents.example.com/skillq/"}
    with HttpServerProcess(env) as public, httpx.Client(base_url=public.url) as http:
        for host in ("127.0.0.1:1", "evil.example"):
            card = http.get("/.well-known/agent-card.json", headers={"Host": host}).json()
            assert card["supportedInterfaces"][0]["url"] == (
                "https://agents.example.com/skillq/a2a/jsonrpc"
            )


def raw_headers(token: str, extra: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """Headers as bytes: how a client sends a byte that is not UTF-8."""
    return {b"Authorization": f"Bearer {token}".encode(), **extra}


def rpc(api: httpx.Client, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    response = api.post("/a2a/jsonrpc", json=body, headers={**auth(token), "A2A-Version": "1.0"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def message(skill: str, args: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "message": {
            "messageId": message_id,
            "role": "ROLE_USER",
            "parts": [{"data": args}],
            "metadata": {"skill": skill},
        },
        "configuration": {"returnImmediately": False},
    }


def test_no_caller_can_take_or_probe_the_job_ids_of_another(api: httpx.Client) -> None:
    """Before: bob could create the id alice's A2A message would use (her message
    then failed 'task not found'), and tell taken ids from free ones (404 / 202)."""
    message_id = uuid.uuid4().hex
    hers = Principal("alice").job_id(MESSAGE_IDS, message_id)
    for name in (hers, message_id):
        taken = submit(api, BOB, "echo", {"message": "bob's"}, job_id=name)
        assert taken != hers
    answer = rpc(api, ALICE, "SendMessage", message("echo", {"message": "hers"}, message_id))
    assert "error" not in answer, answer
    task = answer["result"]["task"]
    assert task["id"] == hers and task["status"]["state"] == "TASK_STATE_COMPLETED", task

    # A name is the caller's own: the same name is the same job for her, another for him.
    first = submit(api, ALICE, "echo", {"message": "one"}, job_id="nightly-report")
    again = submit(api, ALICE, "echo", {"message": "two"}, job_id="nightly-report")
    bobs = submit(api, BOB, "echo", {"message": "three"}, job_id="nightly-report")
    assert first == again != bobs
    assert finished(api, ALICE, first)["result"] == {"message": "one"}
    assert finished(api, BOB, bobs)["result"] == {"message": "three"}
    # Bob learns nothing about alice's job: the same answers as for a job that never was.
    for job in (first, str(uuid.uuid4())):
        assert api.get(f"/v1/jobs/{job}", headers=auth(BOB)).status_code == 404
        assert api.post(f"/v1/jobs/{job}/cancel", headers=auth(BOB)).status_code == 404


def test_a_time_limit_over_http_ends_the_job(api: httpx.Client) -> None:
    job = submit(api, ALICE, "sleepy", {"seconds": 60}, time_limit=0.5)
    ended = finished(api, ALICE, job)
    assert ended["state"] == "failed" and ended["error"]["code"] == "timeout", ended
    refused = api.post("/v1/jobs", json={"skill": "sleepy", "time_limit": 0}, headers=auth(ALICE))
    assert refused.status_code == 422


def test_admin_lists_every_callers_jobs_and_callers_only_their_own(api: httpx.Client) -> None:
    mine = submit(api, ALICE, "echo", {"message": "a"})
    theirs = submit(api, BOB, "echo", {"message": "b"})
    finished(api, BOB, theirs)
    seen = {job["id"] for job in api.get("/v1/jobs", headers=auth(ADMIN)).json()["jobs"]}
    assert {mine, theirs} <= seen
    alices = {job["id"] for job in api.get("/v1/jobs", headers=auth(ALICE)).json()["jobs"]}
    assert mine in alices and theirs not in alices
    # Paging the admin's list goes on from next_before with no repeats.
    first = api.get("/v1/jobs", params={"limit": 1}, headers=auth(ADMIN)).json()
    assert first["next_before"] is not None
    second = api.get(
        "/v1/jobs", params={"limit": 1, "before": first["next_before"]}, headers=auth(ADMIN)
    ).json()
    assert second["jobs"] and second["jobs"][0]["id"] != first["jobs"][0]["id"]
    listed = rpc(api, ADMIN, "ListTasks", {"pageSize": 100})
    assert {mine, theirs} <= {task["id"] for task in listed["result"]["tasks"]}


# --- hostile input: a clear 4xx, never a 500 ---


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error"]["message"], body
    return str(body["error"]["message"])


def test_hostile_job_api_input_is_refused_with_a_reason(api: httpx.Client) -> None:
    headers = {**auth(ALICE), "content-type": "application/json"}
    raw = b'{"skill": "echo", "args": {"message": "\\ud800"}}'
    assert "surrogate" in error_of(api.post("/v1/jobs", content=raw, headers=headers), 400)
    nan = b'{"skill": "echo", "args": {"message": NaN}}'
    assert "NaN" in error_of(api.post("/v1/jobs", content=nan, headers=headers), 400)
    huge = b'{"skill": "echo", "args": {"n": ' + b"9" * 5000 + b"}}"
    error_of(api.post("/v1/jobs", content=huge, headers=headers), 400)
    deep = b'{"skill": "echo", "args": {"a": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
    assert "deeper" in error_of(api.post("/v1/jobs", content=deep, headers=headers), 400)
    latin = b'{"skill": "echo", "args": {"message": "\xb2"}}'
    assert "UTF-8" in error_of(api.post("/v1/jobs", content=latin, headers=headers), 400)
    for before in ("nan", "inf", "-inf"):
        response = api.get("/v1/jobs", params={"before": before}, headers=auth(ALICE))
        assert response.status_code == 422, response.text
    job = submit(api, ALICE, "echo", {"message": "events"})
    finished(api, ALICE, job)
    for last_id in ("9" * 5000, "9" * 20, "-1", "1e3"):
        response = api.get(
            f"/v1/jobs/{job}/events", headers={**auth(ALICE), "Last-Event-ID": last_id}
        )
        assert "Last-Event-ID" in error_of(response, 400)
    odd = api.get(f"/v1/jobs/{job}/events", headers=raw_headers(ALICE, {b"Last-Event-ID": b"\xb2"}))
    assert "Last-Event-ID" in error_of(odd, 400)
    huge_after = api.get(f"/v1/jobs/{job}/events", params={"after": 10**20}, headers=auth(ALICE))
    assert huge_after.status_code == 422
    countdown = api.post(
        "/v1/jobs",
        content=b'{"skill": "echo", "args": {}, "countdown": 1e999}',
        headers=headers,
    )
    assert countdown.status_code in (400, 422), countdown.text
    # The server is still there for everyone.
    assert finished(api, ALICE, submit(api, ALICE, "echo", {"message": "ok"}))["state"] == (
        "succeeded"
    )


def test_hostile_a2a_input_gets_the_json_rpc_error_the_spec_names(api: httpx.Client) -> None:
    headers = {**auth(ALICE), "content-type": "application/json", "A2A-Version": "1.0"}
    body = api.post("/a2a/jsonrpc", content=b'{"jsonrpc": "2.0", "\xff": 1}', headers=headers)
    assert body.status_code == 200 and body.json()["error"]["code"] == -32700, body.text
    sent = api.post("/a2a/jsonrpc", content=_deep_json(3000), headers=headers)
    assert sent.status_code == 200 and sent.json()["error"]["code"] == -32600, sent.text
    listed = rpc(api, ALICE, "ListTasks", {"pageToken": "nan"})
    assert listed["error"]["code"] == -32602 and "Redis" not in json.dumps(listed), listed
    # A header byte that is not UTF-8: an unknown token (401), not a crash.
    odd = api.post(
        "/a2a/jsonrpc", json={}, headers={b"Authorization": b"Bearer \xb2\xff", b"X-Odd": b"\xb2"}
    )
    assert odd.status_code == 401, odd.text
    fine = api.post("/a2a/jsonrpc", json={}, headers=raw_headers(ALICE, {b"X-Odd": b"\xb2"}))
    assert fine.status_code == 200, fine.text


def _deep_json(depth: int) -> bytes:
    data = "[" * depth + "]" * depth
    return (
        '{"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {"message": '
        '{"messageId": "deep", "role": "ROLE_USER", "parts": [{"data": {"a": ' + data + "}}]}}}"
    ).encode()


def test_oversized_bodies_are_refused_before_they_are_read(api: httpx.Client) -> None:
    big = b'{"skill": "echo", "args": {"message": "' + b"x" * (24 * 1024 * 1024) + b'"}}'
    headers = {**auth(ALICE), "content-type": "application/json"}
    assert "SKILLQ_SERVER_MAX_BODY" in error_of(
        api.post("/v1/jobs", content=big, headers=headers), 413
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield big[: 1024 * 1024]
        for start in range(1024 * 1024, len(big), 1024 * 1024):
            yield big[start : start + 1024 * 1024]

    error_of(api.post("/v1/jobs", content=chunks(), headers=headers), 413)
    rpc_big = api.post("/a2a/jsonrpc", content=big, headers=headers)
    assert rpc_big.status_code == 413, rpc_big.text


# --- streams ---


def test_one_callers_streams_do_not_take_the_server_from_others(
    server: HttpServerProcess, api: httpx.Client, raw: redis.Redis
) -> None:
    """Before: each stream held a Redis connection; past the pool's 100 the server
    answered 503 to everyone. Now every stream shares one subscription, and a
    caller is capped (429) while others are served."""
    job = submit(api, BOB, "sleepy", {"seconds": 30, "tick": 0.05})
    clients_before = len(raw.client_list())

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            streams = []
            for _ in range(STREAM_CAP):
                request = http.build_request("GET", f"/v1/jobs/{job}/events", headers=auth(BOB))
                response = await http.send(request, stream=True)
                assert response.status_code == 200
                streams.append(response)
            over = await http.get(f"/v1/jobs/{job}/events", headers=auth(BOB))
            assert over.status_code == 429, over.text
            assert over.json()["error"]["code"] == "too_many_streams"
            # Alice is served meanwhile, streams included.
            listed = await http.get("/v1/jobs", headers=auth(ALICE))
            assert listed.status_code == 200
            mine = submit(api, ALICE, "echo", {"message": "served"})
            async with http.stream("GET", f"/v1/jobs/{mine}/events", headers=auth(ALICE)) as sse:
                assert sse.status_code == 200
                text = ""
                async for chunk in sse.aiter_text():
                    text += chunk
                    if '"succeeded"' in text:
                        break
            # Bob's streams share the server's one subscription: no connection each.
            assert len(raw.client_list()) <= clients_before + 3
            await streams[0].aclose()

            async def reopen() -> httpx.Response:
                """The closed stream's place comes back once the server sees it closed:
                a condition polled until a deadline, as wait_for does."""
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while loop.time() < deadline:
                    request = http.build_request("GET", f"/v1/jobs/{job}/events", headers=auth(BOB))
                    response = await http.send(request, stream=True)
                    if response.status_code == 200:
                        return response
                    await response.aclose()
                    await asyncio.sleep(POLL_SECONDS)
                raise AssertionError("the closed stream's place never came back within 10 s")

            streams[0] = await reopen()
            for response in streams:
                await response.aclose()

    asyncio.run(scenario())
    api.post(f"/v1/jobs/{job}/cancel", headers=auth(BOB))


def test_events_of_a_job_whose_record_vanished_say_so(
    api: httpx.Client, raw: redis.Redis, client: SkillClient
) -> None:
    """Before: the stream of a job Redis lost (restarted without persistence) ended
    as if the job were over. Now the follower learns the record is gone: an SSE
    ``error`` event on the job API, :class:`JobNotFound` from the client."""
    job = submit(api, ALICE, "echo", {"message": "never runs"}, queue="nobody-serves-this")
    with api.stream("GET", f"/v1/jobs/{job}/events", headers=auth(ALICE)) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        caught: list[BaseException] = []

        def follow() -> None:
            try:
                list(client.events(job, after=1))
            except BaseException as exc:
                caught.append(exc)

        follower = threading.Thread(target=follow)
        follower.start()
        raw.delete(f"skillq:job:{job}", f"skillq:stream:{job}")  # as a Redis that lost it
        rest = list(lines)
        follower.join(timeout=30)
    assert "event: error" in rest and any("not_found" in line for line in rest), rest[-5:]
    assert len(caught) == 1 and isinstance(caught[0], JobNotFound), caught


def rss(pid: int) -> int:
    """Resident memory of a process in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_readers_that_read_nothing_do_not_grow_the_server(
    probe_env: dict[str, str], server: HttpServerProcess, api: httpx.Client
) -> None:
    """Before: 50 readers of a busy job that read nothing took the server from 119 to
    471 MiB. Now each stream holds at most SKILLQ_SERVER_STREAM_BUFFER events; a
    reader further behind catches up from Redis when it reads again."""
    import socket

    env = {
        **probe_env,
        "SKILLQ_SERVER_STREAM_BUFFER": "50",
        "SKILLQ_SERVER_MAX_STREAMS_PER_CALLER": "64",
    }
    with HttpServerProcess(env) as quiet:
        assert quiet.process is not None
        pid = quiet.process.pid
        job = submit(api, ALICE, "floods", {"events": 3000, "size": 8192}, queue="default")
        host, port = "127.0.0.1", int(quiet.url.rsplit(":", 1)[1])
        readers = []
        request = (
            f"GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {ALICE}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        before = rss(pid)
        for _ in range(40):
            reader = socket.socket()
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect((host, port))
            reader.sendall(request)
            readers.append(reader)
        try:
            assert finished(api, ALICE, job)["result"] == 3000  # 24 MB of events
            grown = (rss(pid) - before) / 2**20
            print(f"server RSS grew {grown:.1f} MiB for 40 readers reading nothing")
            assert grown < 60, f"the server grew {grown:.0f} MiB for 40 readers reading nothing"
            # A reader that reads again still gets every event, in order.
            with (
                httpx.Client(base_url=quiet.url, timeout=60) as http,
                http.stream("GET", f"/v1/jobs/{job}/events", headers=auth(ALICE)) as response,
            ):
                ids = [int(line[3:]) for line in response.iter_lines() if line.startswith("id:")]
            assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 3002
        finally:
            for reader in readers:
                reader.close()
