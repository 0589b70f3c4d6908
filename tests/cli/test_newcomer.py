"""A newcomer's first mistakes, each answered with what to do: a skill module in
the current folder, a syntax error in it, a handler that is not ``async``, a
submit before any worker ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker import ConfigurationError, skill
from worker.embedded import EmbeddedRedis, free_port, wait_for

SKILLQ = str(Path(sys.executable).parent / "skillq")

MY_SKILLS = """
from worker import skill


@skill("shout")
async def shout(ctx, args):
    return str(args.get("text", "")).upper()
"""


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SKILLQ, *args],
        env={**os.environ, "COLUMNS": "200", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[EmbeddedRedis, dict[str, str]]:
    """A Redis no worker has ever announced itself on."""
    server = EmbeddedRedis(directory=tmp_path / "redis").start()
    return server, {"SKILLQ_BROKER_URL": server.url, "SKILLQ_KEY_PREFIX": "newcomer"}


def test_a_submit_before_any_worker_says_to_start_one(
    fresh: tuple[EmbeddedRedis, dict[str, str]],
) -> None:
    server, env = fresh
    try:
        done = run(env, "submit", "echo")
        assert done.returncode == 2, done.stderr
        assert "no worker has registered any skill yet" in done.stderr
        assert "skillq worker" in done.stderr
        listed = run(env, "skills")
        assert listed.returncode == 0 and listed.stdout == ""
        assert "no worker has registered any skill yet" in listed.stderr
    finally:
        server.stop()


def test_a_worker_finds_skill_modules_in_its_folder(
    fresh: tuple[EmbeddedRedis, dict[str, str]], tmp_path: Path
) -> None:
    """Before: ``SKILLQ_SKILLS=myskills skillq worker`` from the module's folder
    failed with ``No module named 'myskills'``."""
    server, env = fresh
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "myskills.py").write_text(MY_SKILLS)
    env = {**env, "SKILLQ_SKILLS": "myskills", "SKILLQ_HEARTBEAT_INTERVAL": "1"}
    worker = subprocess.Popen(
        [SKILLQ, "worker", "--pool", "threads", "-c", "1"],
        env={**os.environ, **env},
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: "shout" in run(env, "skills", "--json").stdout or worker.poll() is not None,
            60,
            "the worker to announce shout",
        )
        assert worker.poll() is None
        done = run(env, "submit", "shout", "--args", '{"text": "hi"}', "--wait", "--json")
        assert done.returncode == 0, done.stderr
        assert '"result": "HI"' in done.stdout
    finally:
        worker.terminate()
        worker.wait(30)
        server.stop()


def test_a_syntax_error_or_a_missing_module_is_one_line_that_says_where(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.py").write_text("from worker import skill\n\ndef oops(:\n    pass\n")
    env = {"SKILLQ_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0", "SKILLQ_SKILLS": "broken"}
    done = run(env, "worker", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    said = done.stderr.strip()
    assert "syntax error" in said and "broken.py, line 3" in said, said
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    missing = run({**env, "SKILLQ_SKILLS": "nowhere_to_be_found"}, "worker", cwd=tmp_path)
    assert missing.returncode == 2
    assert "No module named 'nowhere_to_be_found'" in missing.stderr
    assert "PYTHONPATH" in missing.stderr and "Traceback" not in missing.stderr


def test_a_handler_that_is_not_async_is_refused_where_it_is_declared() -> None:
    def plain(ctx: object, args: object) -> str:
        return "never awaited"

    with pytest.raises(ConfigurationError, match=r"plain must be an async function"):
        skill("plain")(plain)  # type: ignore[arg-type]


def test_a_delay_too_long_is_not_blamed_on_the_args(
    fresh: tuple[EmbeddedRedis, dict[str, str]],
) -> None:
    """Before: ``--countdown 86400`` was reported as "invalid args for skill 'echo'".
    (A day is fine now that delays wait in Redis; eleven years is not.)"""
    from worker import InvalidArgs, InvalidSubmission, Settings, SkillClient
    from worker.wire.skill_info import SkillInfo

    server, _ = fresh
    try:
        settings = Settings(broker_url=server.url, key_prefix="newcomer")
        with SkillClient(settings) as client:
            client._cache.update({"echo": SkillInfo(name="echo", workers=["somewhere"])})
            with pytest.raises(InvalidSubmission) as caught:
                client.submit("echo", {"message": "x"}, countdown=11 * 366 * 86400)
        assert isinstance(caught.value, InvalidArgs)  # still caught as before
        said = str(caught.value)
        assert "a job may be delayed at most ten years" in said, said
        assert "invalid args" not in said
    finally:
        server.stop()


def test_an_artifact_store_that_refuses_skillq_is_named_at_start_and_by_health(
    stack_env: dict[str, str],
) -> None:
    """Before: wrong S3 settings showed up only as each job's ``handler_error``. Now
    a worker says so when it starts (and still serves skills that write nothing),
    ``skillq health`` warns, and a job whose write is refused fails with its own code."""
    from worker import JobFailed, Settings, SkillClient
    from worker.embedded import WorkerProcess

    env = {**stack_env, "SKILLQ_ARTIFACTS_URL": "s3://no-such-bucket/artifacts"}
    worker = WorkerProcess(env, pool="threads", queues="store-refused").start()
    try:
        worker.wait_ready(env["SKILLQ_BROKER_URL"])
        log = worker.log_path.read_text()
        assert "bucket 'no-such-bucket' does not exist" in log, worker.log_tail(20)
        assert "SKILLQ_ARTIFACTS_URL" in log
        health = run(env, "health", "--hostname", worker.hostname)
        assert health.returncode == 0, health.stderr
        assert "artifact store refused: bucket 'no-such-bucket' does not exist" in health.stderr
        settings = Settings(broker_url=env["SKILLQ_BROKER_URL"], auth_key=env["SKILLQ_AUTH_KEY"])
        with SkillClient(settings) as client:
            fine = client.submit("echo", {"message": "no artifact"}, queue="store-refused")
            assert client.result(fine, timeout=30) == {"message": "no artifact"}
            job = client.submit("report", {}, queue="store-refused")
            with pytest.raises(JobFailed) as caught:
                client.result(job, timeout=60)
        assert caught.value.code == "artifact_store_refused", caught.value
        assert "does not exist" in caught.value.error_message or "NoSuchBucket" in (
            caught.value.error_message
        )
    finally:
        worker.stop()
