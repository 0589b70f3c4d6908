"""An answer to ``ctx.ask`` obeys the limits args obey, on every path: the
Python client (blocking and asyncio), ``POST /v1/jobs/{id}/input``, the CLI's
``skillq respond`` and an A2A message naming the task. Too large, too deep,
or not JSON (a lone surrogate, NaN, an integer too long to print) is refused
with ``InvalidArgs`` before anything is written, the job keeps waiting, and a
good answer afterwards still resumes it."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from typing import Any

import httpx
import pytest
import redis

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from tests.server.test_http_api import ALICE, api, api_env, auth
from worker.client import AsyncSkillClient, SkillClient
from worker.core.errors import InvalidArgs
from worker.core.settings import Settings
from worker.embedded import HttpServerProcess

__all__ = ["api", "api_env"]  # the fixtures this module shares

MAX_BYTES = Settings().max_args_bytes
MAX_DEPTH = Settings().max_args_depth


def nested(levels: int) -> list[Any]:
    """``levels`` lists, one inside the next, built without recursion."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deep_text(levels: int) -> str:
    return "[" * levels + "]" * levels


def asking_job(api: httpx.Client) -> str:
    made = api.post("/v1/jobs", json={"skill": "asks_to_go"}, headers=auth(ALICE))
    assert made.status_code == 202, made.text
    job = str(made.json()["job_id"])
    wait_for(lambda: state_of(api, job) == "input_required", 30, "the question")
    return job


def state_of(api: httpx.Client, job: str) -> str:
    return str(api.get(f"/v1/jobs/{job}", headers=auth(ALICE)).json()["state"])


def record(raw: redis.Redis, job: str) -> dict[bytes, bytes]:
    return dict(raw.hgetall(f"skillq:job:{job}"))  # type: ignore[arg-type]


def resumes(api: httpx.Client, job: str) -> None:
    """The job still waits, and a good answer still resumes it."""
    assert state_of(api, job) == "input_required"
    right = api.post(f"/v1/jobs/{job}/input", json={"data": {"go": True}}, headers=auth(ALICE))
    assert right.status_code == 200, right.text
    wait_for(lambda: state_of(api, job) == "succeeded", 30, "the answered job to end")


def test_the_python_client_refuses_answers_args_could_not_be(
    api: httpx.Client, client: SkillClient, settings: Settings, raw: redis.Redis
) -> None:
    """Before: a 20 MB answer was stored, a 5,000-deep one raised RecursionError,
    a lone surrogate was stored (escaped) for the job to choke on."""
    job = asking_job(api)
    before = record(raw, job)
    hostile: list[tuple[Any, str]] = [
        ({"go": True, "pad": "x" * (20 * 1024 * 1024)}, "byte limit"),
        ({"go": True, "deep": nested(5000)}, "SKILLQ_MAX_ARGS_DEPTH"),
        ({"go": True, "deep": nested(MAX_DEPTH + 1)}, "SKILLQ_MAX_ARGS_DEPTH"),
        ({"go": True, "text": "\ud800"}, "surrogate"),
        ({"go": True, "n": math.nan}, "not JSON"),
        ({"go": True, "n": math.inf}, "not JSON"),
        ({"go": True, "n": 10**5000}, "not JSON"),
    ]
    for answer, reason in hostile:
        with pytest.raises(InvalidArgs, match=reason):
            client.respond(job, answer)

    async def refused_async() -> None:
        async with AsyncSkillClient(settings) as aclient:
            for answer, reason in hostile[:2]:
                with pytest.raises(InvalidArgs, match=reason):
                    await aclient.respond(job, answer)

    asyncio.run(refused_async())
    # Nothing was written: the record is as it was, and the job still waits.
    assert record(raw, job) == before
    resumes(api, job)


def test_http_refuses_answers_over_the_args_limits(api: httpx.Client) -> None:
    """Past what args may be but within the body limit: 422 naming the limit.
    Before: both were stored and the job went on with them."""
    job = asking_job(api)
    headers = {**auth(ALICE), "content-type": "application/json"}
    big = json.dumps({"data": {"go": True, "pad": "x" * (MAX_BYTES + 100)}}).encode()
    too_big = api.post(f"/v1/jobs/{job}/input", content=big, headers=headers)
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["error"]["code"] == "invalid_args"
    assert "byte limit" in too_big.json()["error"]["message"]
    # Deeper than the args may nest, yet within the body's allowance around them.
    deep = b'{"data": {"go": true, "deep": ' + deep_text(MAX_DEPTH + 4).encode() + b"}}"
    too_deep = api.post(f"/v1/jobs/{job}/input", content=deep, headers=headers)
    assert too_deep.status_code == 422, too_deep.text
    assert "SKILLQ_MAX_ARGS_DEPTH" in too_deep.json()["error"]["message"]
    # What no route may see is refused at the door: 400, or 413 unread.
    for body in (
        b'{"data": {"go": true, "deep": ' + deep_text(5000).encode() + b"}}",
        b'{"data": {"go": true, "text": "\\ud800"}}',
        b'{"data": {"go": true, "n": NaN}}',
        b'{"data": {"go": true, "n": ' + b"9" * 5000 + b"}}",
    ):
        refused = api.post(f"/v1/jobs/{job}/input", content=body, headers=headers)
        assert refused.status_code == 400, refused.text
    huge = b'{"data": {"go": true, "pad": "' + b"x" * (20 * 1024 * 1024) + b'"}}'
    unread = api.post(f"/v1/jobs/{job}/input", content=huge, headers=headers)
    assert unread.status_code == 413, unread.text
    resumes(api, job)


def test_a_server_with_a_larger_body_limit_still_holds_answers_to_the_args_limit(
    api: httpx.Client, api_env: dict[str, str]
) -> None:
    """The body limit bounds what is read; the args limit what an answer may be."""
    job = asking_job(api)
    env = {**api_env, "SKILLQ_SERVER_MAX_BODY": str(32 * 1024 * 1024)}
    with HttpServerProcess(env) as roomy, httpx.Client(base_url=roomy.url, timeout=60) as http:
        body = {"data": {"go": True, "pad": "x" * (20 * 1024 * 1024)}}
        refused = http.post(f"/v1/jobs/{job}/input", json=body, headers=auth(ALICE))
        assert refused.status_code == 422, refused.text[:300]
        assert "byte limit" in refused.json()["error"]["message"]
    resumes(api, job)


def test_the_cli_and_a2a_refuse_them_too(api: httpx.Client, stack_env: dict[str, str]) -> None:
    """Before: ``skillq respond`` died with a RecursionError traceback on a deep
    answer, and an A2A answer past the size limit was stored."""
    job = asking_job(api)
    cli = skillq(stack_env, "respond", job, "--args", '{"go": true, "d": ' + deep_text(5000) + "}")
    assert cli.returncode == 2, (cli.returncode, cli.stderr[-500:])
    assert "Traceback" not in cli.stderr and "deep" in cli.stderr, cli.stderr[-500:]
    cli = skillq(
        stack_env, "respond", job, "--args", json.dumps({"go": True, "d": nested(MAX_DEPTH + 1)})
    )
    assert cli.returncode == 2 and "SKILLQ_MAX_ARGS_DEPTH" in cli.stderr, cli.stderr[-500:]
    # Over A2A, depth past the limit is refused by the protocol's own parser
    # (100 protobuf levels, two per JSON level); size reaches the answer's check.
    for data, reason in (
        ({"go": True, "pad": "x" * (MAX_BYTES + 100)}, "SKILLQ_MAX_ARGS_BYTES"),
        ({"go": True, "deep": nested(MAX_DEPTH + 1)}, "too deep"),
    ):
        message = {
            "messageId": uuid.uuid4().hex,
            "taskId": job,
            "role": "ROLE_USER",
            "parts": [{"data": data}],
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        sent = api.post("/a2a/jsonrpc", json=body, headers={**auth(ALICE), "A2A-Version": "1.0"})
        assert sent.status_code == 200, sent.text[:300]
        error = sent.json().get("error")
        assert error is not None and error["code"] == -32602, sent.text[:300]
        assert reason in json.dumps(error), sent.text[:300]
    resumes(api, job)
