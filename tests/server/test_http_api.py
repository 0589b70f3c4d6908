"""The job API over HTTP: a real uvicorn server (``python -m worker.server``)
in front of real workers, called with httpx as any application would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import HttpServerProcess, WorkerProcess, free_port, wait_for
from worker.server.principals import new_token, token_hash
from worker.store.schedules import ScheduleInfo

ALICE, BOB, ADMIN = new_token(), new_token(), new_token()
JWT_KEY = "jwt-test-key-" + new_token()
TOKENS = [
    {"sha256": token_hash(ALICE), "subject": "alice", "scopes": ["text:read"]},
    {"sha256": token_hash(BOB), "subject": "bob", "scopes": []},
    {"sha256": token_hash(ADMIN), "subject": "root", "scopes": ["skillq:admin"]},
]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {
        **stack_env,
        "SKILLQ_SKILLS": "tasks,ext_skills,http_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
        "SKILLQ_SERVER_JWT_KEY": JWT_KEY,
        # Bounds ?wait= below the fuzzer's request timeout (it asks for huge waits).
        "SKILLQ_SERVER_MAX_WAIT": "5",
    }


def every_schedule(client: SkillClient) -> list[ScheduleInfo]:
    found: list[ScheduleInfo] = []
    cursor: str | None = None
    while True:
        page = client.schedules(limit=1000, cursor=cursor)
        found += page
        if (cursor := page.cursor) is None:
            return found


@pytest.fixture(scope="module")
def api(
    api_env: dict[str, str], start_worker: Callable[..., WorkerProcess], settings: Settings
) -> Iterator[httpx.Client]:
    began = time.time()
    with SkillClient(settings) as client:
        kept = {info.spec.name for info in every_schedule(client)}
    worker = start_worker(pool="threads", concurrency=4, queues="default,ext,http", env=api_env)
    with (
        HttpServerProcess(api_env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        yield http
    with SkillClient(settings) as client:
        # What the fuzzer submitted must not run on the next module's workers.
        for job in client.jobs(since=began, limit=1000).jobs:
            if not job.finished:
                client.cancel(job.id)
        # Nor may the schedules it made (as alice) fire into the next module.
        for info in every_schedule(client):
            if info.spec.name not in kept:
                client.unschedule(info.spec.name)
    worker.stop(timeout=10)


def submit(
    api: httpx.Client, token: str, skill: str, args: dict[str, Any] | None = None, **extra: Any
) -> str:
    response = api.post(
        "/v1/jobs", json={"skill": skill, "args": args or {}, **extra}, headers=auth(token)
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def outcome(api: httpx.Client, token: str, job: str) -> dict[str, Any]:
    """The job's outcome, waiting for it (the server waits at most 5 s per request)."""

    def finished() -> dict[str, Any] | None:
        response = api.get(f"/v1/jobs/{job}/result", params={"wait": 5}, headers=auth(token))
        assert response.status_code in (200, 202), response.text
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 else None

    found = wait_for(finished, timeout=60, what=f"job {job} to end")
    assert found is not None
    return found


def sse(
    api: httpx.Client,
    token: str,
    job: str,
    *,
    last_id: int | None = None,
    stop_after: int | None = None,
) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, envelope) of the job's SSE stream, to its end or ``stop_after`` events."""
    headers = auth(token)
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    found: list[tuple[int, str, dict[str, Any]]] = []
    with api.stream("GET", f"/v1/jobs/{job}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # a ping
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.lstrip(" ")
                continue
            if "data" in fields:
                found.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                if stop_after is not None and len(found) >= stop_after:
                    break  # closes the connection mid-stream
            fields = {}
    return found


def test_a_job_runs_as_the_token_says_whatever_the_body_claims(api: httpx.Client) -> None:
    forged = {"subject": "root", "scopes": ["skillq:admin", "text:read"]}
    job = submit(api, BOB, "whoami", auth=forged)
    done = outcome(api, BOB, job)
    assert done["state"] == "succeeded" and done["finished"]
    assert done["result"] == {"subject": "bob", "scopes": []}
    status = api.get(f"/v1/jobs/{job}", headers=auth(BOB)).json()
    assert status["owner"] == "bob" and status["skill"] == "whoami"
    jwt_token = jwt.encode({"sub": "carol", "scope": "a b", "exp": time.time() + 60}, JWT_KEY)
    job = submit(api, jwt_token, "whoami")
    assert outcome(api, jwt_token, job)["result"] == {"subject": "carol", "scopes": ["a", "b"]}


def test_authentication_and_ownership(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"ok": True}
    missing = api.get("/v1/skills")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "invalid_auth"
    assert api.get("/v1/skills", headers=auth("sq_not-a-token")).status_code == 401
    expired = jwt.encode({"sub": "carol", "exp": time.time() - 10}, JWT_KEY)
    assert api.get("/v1/skills", headers=auth(expired)).status_code == 401
    forged = jwt.encode(
        {"sub": "carol", "exp": time.time() + 60}, "another-key-entirely-0000-0000-0000-0000"
    )
    assert api.get("/v1/skills", headers=auth(forged)).status_code == 401
    job = submit(api, ALICE, "echo", {"message": "mine"})
    for method, path in [
        ("GET", ""),
        ("GET", "/result"),
        ("POST", "/cancel"),
        ("GET", "/artifacts"),
        ("GET", "/events"),
    ]:
        response = api.request(method, f"/v1/jobs/{job}{path}", headers=auth(BOB))
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert outcome(api, ADMIN, job)["result"] == {"message": "mine"}  # the admin scope sees all
    listed = api.get("/v1/jobs", headers=auth(ALICE)).json()["jobs"]
    assert job in [item["id"] for item in listed]
    assert job not in [item["id"] for item in api.get("/v1/jobs", headers=auth(BOB)).json()["jobs"]]
    refused = api.post(
        "/v1/jobs", json={"skill": "wordcount", "args": {"text": "a b"}}, headers=auth(BOB)
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scopes"


def test_an_idempotency_key_is_the_callers_own(api: httpx.Client) -> None:
    body = {"skill": "echo", "args": {"message": "once"}, "idempotency_key": "order-7"}
    first = api.post("/v1/jobs", json=body, headers=auth(ALICE)).json()["job_id"]
    again = api.post("/v1/jobs", json=body, headers=auth(ALICE)).json()["job_id"]
    theirs = api.post("/v1/jobs", json=body, headers=auth(BOB)).json()["job_id"]
    assert first == again and theirs != first
    assert outcome(api, BOB, theirs)["result"] == {"message": "once"}


def test_errors_come_from_the_error_table(api: httpx.Client) -> None:
    cases = [
        ({"skill": "no_such_skill"}, 404, "unknown_skill"),
        ({"skill": "echo", "args": {"message": 5}}, 422, "invalid_args"),
        ({"skill": "echo", "args": [1]}, 422, "invalid_request"),
        ({"skill": "echo", "job_id": "a name\nwith a newline"}, 422, "invalid_request"),
        ({"skill": "echo", "queue": "skillq:job:x"}, 422, "invalid_args"),
    ]
    for body, status, code in cases:
        response = api.post("/v1/jobs", json=body, headers=auth(ALICE))
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["message"], (body, error)
    unknown = api.get("/v1/jobs/no-such-job", headers=auth(ALICE))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    garbage = api.post("/v1/jobs", content=b"{not json", headers=auth(ALICE))
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_request"
    failed = outcome(api, ALICE, submit(api, ALICE, "boom"))
    assert failed["state"] == "failed" and failed["error"]["code"] == "handler_error"


def test_events_stream_in_order_and_resume_after_a_disconnect(api: httpx.Client) -> None:
    job = submit(api, ALICE, "story", {"words": 40, "delay": 0.01})
    first = sse(api, ALICE, job, stop_after=5)
    assert [seq for seq, _, _ in first] == [1, 2, 3, 4, 5]
    rest = sse(api, ALICE, job, last_id=5)
    seqs = [seq for seq, _, _ in first + rest]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # no gap, no duplicate
    kind, envelope = rest[-1][1], rest[-1][2]
    assert kind == "status" and envelope["payload"]["state"] == "succeeded"
    text = "".join(e["payload"]["text"] for _, k, e in first + rest if k == "text_delta")
    assert text.split() == outcome(api, ALICE, job)["result"]["text"].split()
    replayed = sse(api, ALICE, job)  # a finished job replays whole
    assert [seq for seq, _, _ in replayed] == seqs


def test_cancel_and_artifacts(api: httpx.Client) -> None:
    job = submit(api, ALICE, "sleepy", {"seconds": 60})
    wait_for(
        lambda: api.get(f"/v1/jobs/{job}", headers=auth(ALICE)).json()["state"] == "running",
        timeout=30,
    )
    cancelled = api.post(f"/v1/jobs/{job}/cancel", headers=auth(ALICE)).json()
    assert cancelled["cancelled"] is True
    assert outcome(api, ALICE, job)["state"] == "cancelled"
    again = api.post(f"/v1/jobs/{job}/cancel", headers=auth(ALICE)).json()
    assert again == {"job_id": job, "cancelled": False, "state": "cancelled"}
    job = submit(api, ALICE, "report", {"title": "Over HTTP"})
    assert outcome(api, ALICE, job)["state"] == "succeeded"
    [listed] = api.get(f"/v1/jobs/{job}/artifacts", headers=auth(ALICE)).json()
    assert listed["name"] == "report.md" and listed["mime_type"] == "text/markdown"
    redirect = api.get(listed["url"], headers=auth(ALICE))
    assert redirect.status_code == 307 and "Signature=" in redirect.headers["location"]
    assert httpx.get(redirect.headers["location"]).text.startswith("# Over HTTP")
    missing = api.get(f"/v1/jobs/{job}/artifacts/nope.md", headers=auth(ALICE))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "artifact_not_found"


def test_a_retry_is_the_callers_new_job_linked_to_the_old(api: httpx.Client) -> None:
    job = submit(api, ALICE, "boom", {"why": "first"})
    assert outcome(api, ALICE, job)["state"] == "failed"
    assert api.post(f"/v1/jobs/{job}/retry", headers=auth(BOB)).status_code == 404
    retried = api.post(f"/v1/jobs/{job}/retry", headers=auth(ALICE))
    assert retried.status_code == 202, retried.text
    again = retried.json()["job_id"]
    assert outcome(api, ALICE, again)["state"] == "failed"
    new = api.get(f"/v1/jobs/{again}", headers=auth(ALICE)).json()
    assert new["retry_of"] == job and new["owner"] == "alice" and new["args"] == {"why": "first"}
    assert api.get(f"/v1/jobs/{job}", headers=auth(ALICE)).json()["retried_by"] == [again]
    by_admin = api.post(f"/v1/jobs/{job}/retry", headers=auth(ADMIN)).json()["job_id"]
    assert api.get(f"/v1/jobs/{by_admin}", headers=auth(ADMIN)).json()["owner"] == "root"
    running = submit(api, ALICE, "sleepy", {"seconds": 60})
    wait_for(
        lambda: api.get(f"/v1/jobs/{running}", headers=auth(ALICE)).json()["state"] == "running",
        timeout=30,
    )
    refused = api.post(f"/v1/jobs/{running}/retry", headers=auth(ALICE))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_retryable"
    api.post(f"/v1/jobs/{running}/cancel", headers=auth(ALICE))


def test_registry_and_openapi(api: httpx.Client) -> None:
    skills = {item["name"]: item for item in api.get("/v1/skills", headers=auth(ALICE)).json()}
    assert {"echo", "story", "whoami"} <= set(skills)
    assert skills["echo"]["args_schema"]["properties"]["message"]["type"] == "string"
    agents = api.get("/v1/agents", headers=auth(ALICE)).json()
    assert any("whoami" in agent["skills"] for agent in agents)
    schema = api.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}/events", "/healthz"} <= set(schema["paths"])


def test_schemathesis_finds_no_server_error(api: httpx.Client) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{api.base_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--header",
            f"Authorization: Bearer {ALICE}",
            "--exclude-path-regex",
            "/events$",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_server_refuses_to_serve_anonymously_beyond_loopback(
    stack_env: dict[str, str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.server", "--host", "0.0.0.0", "--port", str(free_port())],
        env={**stack_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "--insecure" in done.stderr
