"""Rolling deploys, an empty fleet, and what a user needs to find out what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from tests.conftest import AUTH_KEY, wait_for
from worker.app import create_app
from worker.client import SkillClient
from worker.core.errors import JobFailed, JobNotFound, UnknownSkill
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess
from worker.store.keys import Keys
from worker.wire.signing import sign

SKILLQ = str(Path(sys.executable).parent / "skillq")


def skillq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SKILLQ, *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_worker_without_the_skill_gives_the_job_back_during_a_rolling_deploy(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    # The old worker has only the bundled skills; the skill it lacks was served
    # (and so catalogued) by another worker of this deployment.
    start_worker(pool="threads", queues="rolling-seed").stop()
    old = start_worker(pool="threads", queues="rolling", env={"SKILLQ_SKILLS": "tasks"})
    client.skills()
    ids = [client.submit("echo_any", {"n": n}, queue="rolling") for n in range(8)]
    wait_for(lambda: "put back on queue 'rolling'" in old.log_path.read_text(), 30, "a give-back")
    assert all(client.status(job_id).state == "queued" for job_id in ids)
    new = start_worker(pool="threads", queues="rolling")
    results = [client.result(job_id, timeout=60) for job_id in ids]
    assert results == [{"type": "dict", "args": {"n": n}} for n in range(8)]
    assert {client.status(job_id).worker for job_id in ids} == {new.hostname}
    assert "UnknownSkill" not in old.log_path.read_text()
    old.stop()
    new.stop()


def test_jobs_put_back_for_other_workers_do_not_delay_the_next_one(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    """Before: each put-back slept in the consumer's read, doubling to 1 s, so a job
    queued behind 60 jobs for another worker waited about a minute."""
    start_worker(pool="threads", queues="backlog-seed").stop()  # the catalog knows echo_any
    old = start_worker(pool="threads", queues="backlog", env={"SKILLQ_SKILLS": "tasks"})
    client.skills()
    theirs = [client.submit("echo_any", {"n": n}, queue="backlog") for n in range(60)]
    ours = client.submit("echo", {"message": "mine"}, queue="backlog")
    assert client.result(ours, timeout=15) == {"message": "mine"}
    assert all(client.status(job_id).state == "queued" for job_id in theirs)
    for job_id in theirs:
        client.cancel(job_id)
    old.stop()


@pytest.fixture
def fleet(tmp_path: Path, stack_env: dict[str, str]) -> tuple[EmbeddedRedis, dict[str, str]]:
    """A Redis of its own, so "no worker is up" is true for it."""
    server = EmbeddedRedis(directory=tmp_path / "redis").start()
    env = {**stack_env, "SKILLQ_BROKER_URL": server.url, "SKILLQ_KEY_PREFIX": "fleet"}
    return server, env


def test_jobs_queue_while_no_worker_is_up_for_skills_the_catalog_knows(
    fleet: tuple[EmbeddedRedis, dict[str, str]],
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
) -> None:
    server, env = fleet
    try:
        local = settings.model_copy(update={"broker_url": server.url, "key_prefix": "fleet"})
        first = start_worker(
            pool="threads", queues="default", env=env, ready_url=server.url, ready_prefix="fleet"
        )
        first.stop()  # the whole fleet is down, as in a full redeploy
        with SkillClient(local) as client:
            assert [s.name for s in client.skills() if s.live] == []
            job_id = client.submit("echo", {"message": "queued meanwhile"})
            status = client.status(job_id)
            assert status.state == "queued"
            assert status.notice is not None and "no running worker serves" in status.notice
            with pytest.raises(UnknownSkill, match="never_served"):
                client.submit("never_served", {})
            shown = skillq({**env}, "status", job_id)
            assert "no running worker serves" in shown.stdout
            second = start_worker(
                pool="threads",
                queues="default",
                env=env,
                ready_url=server.url,
                ready_prefix="fleet",
            )
            try:
                assert client.result(job_id, timeout=60) == {"message": "queued meanwhile"}
                assert client.status(job_id).notice is None
                # Dead letters follow the key prefix too.
                raw = redis.Redis.from_url(server.url)
                raw.lpush("default", b"\x00 not a message")
                wait_for(lambda: raw.llen("fleet:dead") == 1, 20, "the dead letter")
                assert raw.llen("skillq:dead") == 0
            finally:
                second.stop()
    finally:
        server.close()


def test_a_failed_job_keeps_its_traceback_everywhere(
    worker: WorkerProcess, client: SkillClient, settings: Settings, stack_env: dict[str, str]
) -> None:
    job_id = client.submit("boom", {})
    with pytest.raises(JobFailed):
        client.result(job_id, timeout=30)
    error = client.status(job_id).error
    assert error is not None and error.traceback is not None
    assert 'raise ValueError("the handler gave up on purpose")' in error.traceback
    assert "ext_skills.py" in error.traceback
    assert error.code == "handler_error"
    wait_for(lambda: job_id in worker.log_path.read_text(), 10, "the log line")
    assert "Traceback (most recent call last)" in worker.log_path.read_text()
    shown = skillq(stack_env, "status", job_id)
    assert "raise ValueError" in shown.stdout and "handler_error" in shown.stdout
    as_json = json.loads(skillq(stack_env, "status", job_id, "--json").stdout)
    assert "raise ValueError" in as_json["error"]["traceback"]
    celery_view: AsyncResult[Any] = AsyncResult(job_id, app=create_app(settings))
    assert celery_view.state == "FAILURE"
    assert "raise ValueError" in str(celery_view.traceback)


@pytest.mark.parametrize(
    ("skill", "args", "auth", "code"),
    [
        ("wordcount", {"text": 5}, {"scopes": ["text:read"]}, 2),  # invalid args
        ("wordcount", {"text": "a b"}, {"scopes": []}, 2),  # missing scopes
        ("boom", {}, None, 1),
    ],
)
def test_cli_exit_codes_follow_the_stored_error_code(
    worker: WorkerProcess,
    settings: Settings,
    stack_env: dict[str, str],
    skill: str,
    args: dict[str, Any],
    auth: dict[str, Any] | None,
    code: int,
) -> None:
    producer: Celery = create_app(settings)
    job_id = str(uuid.uuid4())
    kwargs: dict[str, Any] = {"args": args}
    if auth is not None:
        kwargs["auth"] = sign(AUTH_KEY, job_id, skill, args, auth, 60)
    queue = "ext" if skill == "wordcount" else "default"
    producer.send_task(f"skills.{skill}", kwargs=kwargs, task_id=job_id, queue=queue)
    with SkillClient(settings) as client:
        wait_for(lambda: finished(client, job_id), 30, "the job to fail")
    done = skillq(stack_env, "result", job_id, "--timeout", "30")
    assert done.returncode == code, done.stderr


def finished(client: SkillClient, job_id: str) -> bool:
    try:
        return client.status(job_id).finished
    except JobNotFound:
        return False


def test_monitors_see_cancelled_jobs_end(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, settings: Settings
) -> None:
    worker = start_worker(pool="prefork", queues="monitored", extra=["-E"])
    app = create_app(settings)
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": seen.append})
            ready.set()
            for _ in receiver.itercapture(limit=None, timeout=0.5, wakeup=False):
                if stop.is_set():
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        ready.wait(10)

        def probe_seen() -> bool:
            with app.events.default_dispatcher() as dispatcher:
                dispatcher.send("skillq-probe")
            return any(e["type"] == "skillq-probe" for e in seen)

        wait_for(probe_seen, 30, "the monitor to consume events", interval=0.2)
        job_id = client.submit("sleepy", {"seconds": 60}, queue="monitored")
        wait_for(
            lambda: any(e.get("uuid") == job_id and e["type"] == "task-received" for e in seen),
            30,
            "the monitor to see the job",
        )
        wait_for(lambda: client.status(job_id).state == "running", 20, "the job to start")
        assert client.cancel(job_id)
        wait_for(
            lambda: any(e.get("uuid") == job_id and e["type"] == "task-revoked" for e in seen),
            30,
            "task-revoked for the cancelled job",
        )
    finally:
        stop.set()
        worker.stop()


def test_a_worker_without_skills_refuses_to_start(stack_env: dict[str, str]) -> None:
    process = WorkerProcess(
        {**stack_env, "SKILLQ_SKILLS": "json"}, pool="threads", queues="nothing"
    ).start()
    assert process.process is not None
    assert process.process.wait(60) != 0
    assert "no skills found in json" in process.log_path.read_text()


def test_the_worker_logs_where_each_skill_came_from(worker: WorkerProcess) -> None:
    log = worker.log_path.read_text()
    assert "skill 'wordcount' (skills.wordcount) from " in log
    assert "ext_skills.py" in log


def test_a_late_reader_learns_that_events_were_trimmed(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    worker = start_worker(pool="threads", queues="trimmed", env={"SKILLQ_STREAM_MAXLEN": "20"})
    job_id = client.submit("story", {"words": 200, "delay": 0}, queue="trimmed")
    client.result(job_id, timeout=60)
    events = list(client.events(job_id))
    assert events[0]["kind"] == "gap"
    gap = events[0]["payload"]
    assert gap["from_seq"] == 1 and gap["to_seq"] == events[1]["seq"] - 1
    assert events[-1]["payload"]["state"] == "succeeded"
    assert [e["seq"] for e in events[1:]] == list(range(events[1]["seq"], events[-1]["seq"] + 1))
    worker.stop()


def test_keys_are_under_the_prefix() -> None:
    keys = Keys("other")
    assert keys.dead_letters == "other:dead"
    assert keys.catalog.startswith("other:") and keys.heartbeats.startswith("other:")
