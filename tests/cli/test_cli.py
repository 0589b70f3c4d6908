"""Every CLI command, through the real `skillq` executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.embedded import EmbeddedRedis, WorkerProcess
from worker.store.keys import Keys
from worker.store.registry import is_alive

SKILLQ = str(Path(sys.executable).parent / "skillq")


@pytest.fixture(scope="module")
def cli_worker(start_worker: Any) -> Iterator[WorkerProcess]:
    process: WorkerProcess = start_worker(pool="threads", concurrency=4)
    yield process
    process.stop()


def skillq(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SKILLQ, *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_submit_wait_json(cli_worker: WorkerProcess, stack_env: dict[str, str]) -> None:
    done = skillq(stack_env, "submit", "echo", "--args", '{"message": "cli"}', "--wait", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["result"] == {"message": "cli"}


def test_submit_status_result_artifacts(
    cli_worker: WorkerProcess, stack_env: dict[str, str], tmp_path: Path
) -> None:
    submitted = skillq(stack_env, "submit", "report", "--args", '{"title": "CLI"}')
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    result = skillq(stack_env, "result", job_id, "--timeout", "30", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"]["size_bytes"] > 0
    status = skillq(stack_env, "status", job_id, "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["state"] == "succeeded"
    human = skillq(stack_env, "status", job_id)
    assert "succeeded" in human.stdout and job_id in human.stdout
    listed = skillq(stack_env, "artifacts", job_id, "--json")
    assert [a["name"] for a in json.loads(listed.stdout)] == ["report.md"]
    fetched = skillq(stack_env, "artifacts", job_id, "--download", str(tmp_path))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "report.md").read_text().startswith("# CLI")


def test_watch_shows_streamed_text(cli_worker: WorkerProcess, stack_env: dict[str, str]) -> None:
    watched = skillq(stack_env, "submit", "story", "--args", '{"words": 5, "delay": 0}', "--watch")
    assert watched.returncode == 0, watched.stderr
    assert "once upon a time there" in watched.stdout
    assert "succeeded" in watched.stdout


def test_watch_json_and_replay(
    cli_worker: WorkerProcess, stack_env: dict[str, str], client: SkillClient
) -> None:
    job_id = client.submit("story", {"words": 4, "delay": 0})
    watched = skillq(stack_env, "watch", job_id, "--json", "--timeout", "30")
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["payload"]["state"] == "succeeded"


def test_skills(cli_worker: WorkerProcess, stack_env: dict[str, str]) -> None:
    listed = skillq(stack_env, "skills", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {s["name"]: s for s in json.loads(listed.stdout)}
    assert names["wordcount"]["args_schema"]["required"] == ["text"]
    table = skillq(stack_env, "skills")
    assert "wordcount" in table.stdout


def test_cancel(cli_worker: WorkerProcess, stack_env: dict[str, str], client: SkillClient) -> None:
    job_id = client.submit("sleepy", {"seconds": 60})
    wait_for(lambda: client.status(job_id).state == "running", 20, "the job to start")
    cancelled = skillq(stack_env, "cancel", job_id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {"job_id": job_id, "cancelled": True}
    outcome = skillq(stack_env, "result", job_id, "--timeout", "30")
    assert outcome.returncode == 3, outcome.stderr
    again = skillq(stack_env, "cancel", job_id)
    assert again.returncode == 0 and "already finished" in again.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "no-such-job"], 4, "job not found"),
        (["result", "no-such-job"], 4, "job not found"),
        (["cancel", "no-such-job"], 4, "job not found"),
        (["watch", "no-such-job"], 4, "job not found"),
        (["artifacts", "no-such-job"], 4, "job not found"),
        (["submit", "no_such_skill"], 2, "unknown skill"),
        (["submit", "echo", "--args", "{not json"], 2, "not valid JSON"),
        (["submit", "echo", "--args", "[1]"], 2, "must be a JSON object"),
        (  # the decoder's own recursion, not a traceback
            ["submit", "echo", "--args", '{"a":' + "[" * 5000 + "]" * 5000 + "}"],
            2,
            "--args is nested too deeply",
        ),
        (["submit", "wordcount", "--args", "{}"], 2, "text: field required"),
        (["submit", "boom", "--wait"], 1, "the handler gave up on purpose"),
        (
            ["submit", "sleepy", "--args", '{"seconds": 2}', "--wait", "--timeout", "0.3"],
            5,
            "timed out after 0.3 s",
        ),
    ],
)
def test_exit_codes(
    cli_worker: WorkerProcess, stack_env: dict[str, str], args: list[str], code: int, message: str
) -> None:
    done = skillq(stack_env, *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr


def test_unreachable_redis_exits_6(stack_env: dict[str, str]) -> None:
    from worker.embedded import free_port

    env = {
        **stack_env,
        "SKILLQ_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SKILLQ_REDIS_RETRIES": "1",
    }
    done = skillq(env, "status", "x", timeout=120)
    assert done.returncode == 6, done.stderr
    assert "cannot reach Redis" in done.stderr


def test_worker_command_serves_jobs(
    stack_env: dict[str, str], redis_server: EmbeddedRedis, client: SkillClient, tmp_path: Path
) -> None:
    hostname = "cli-worker@localhost"
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [SKILLQ, "worker", "-P", "solo", "-Q", "solo-q", "-n", hostname, "--without-mingle"],
        env={**os.environ, **stack_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        raw: Any = __import__("redis").Redis.from_url(redis_server.url)
        wait_for(lambda: is_alive(raw, Keys(), hostname), 60, "the CLI worker")
        job_id = client.submit("echo", {"message": "solo"}, queue="solo-q")
        assert client.result(job_id, timeout=30) == {"message": "solo"}
        assert client.status(job_id).worker == hostname
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def test_demo_runs_on_an_embedded_default(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SKILLQ_") and not key.startswith("AWS_")
    }
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [SKILLQ, "demo", "--words", "6"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "once upon a time there was" in done.stdout
    assert "It works." in done.stdout
    assert "demo finished" in done.stdout


def test_redis_away_is_reported_at_once_naming_the_setting_and_address() -> None:
    """Before: 9-11 s of retries, then a message that named neither."""
    from worker.embedded import free_port

    port = free_port()  # nothing listens there
    env = {"SKILLQ_BROKER_URL": f"redis://user:hunter2@127.0.0.1:{port}/0"}
    for args in (("status", "some-job"), ("skills",), ("submit", "echo")):
        done = skillq({**env, "COLUMNS": "80"}, *args, timeout=20)
        assert done.returncode == 6, (args, done.stderr)
        said = done.stderr.strip()
        assert f"cannot reach Redis at redis://user:***@127.0.0.1:{port}/0" in said, said
        assert "(SKILLQ_BROKER_URL)" in said and "hunter2" not in said
        assert len(said.splitlines()) == 1, said  # one line, even in a pipe
    named = skillq({**env, "SKILLQ_REDIS_URL": f"redis://127.0.0.1:{port}/3"}, "skills")
    assert "(SKILLQ_REDIS_URL)" in named.stderr and f"{port}/3" in named.stderr
