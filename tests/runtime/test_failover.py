"""Redis behind Sentinel: workers and clients configured only with
``sentinel://`` URLs follow a failover, and nothing acknowledged is lost.

Real processes on loopback: a primary and a replica (``redis-server``),
three sentinels (``redis-server --sentinel``), celery workers. The primary
is SIGKILLed mid-run; the sentinels promote the replica within seconds.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from worker.client import SkillClient
from worker.core.errors import NotReplicated
from worker.core.settings import Settings
from worker.embedded import HttpServerProcess, SentinelGroup, WorkerProcess, wait_for
from worker.server.principals import new_token, token_hash
from worker.store.redis_config import redacted
from worker.store.replication import required_replicas
from worker.wire.celery_app import configured_app

SKILLQ = str(Path(sys.executable).with_name("skillq"))

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    with SentinelGroup() as started:
        yield started


def sentinel_env(group: SentinelGroup) -> dict[str, str]:
    return {
        "SKILLQ_BROKER_URL": group.url(0),
        "SKILLQ_RESULT_BACKEND": group.url(1),
        "SKILLQ_REDIS_URL": group.url(2),
        "SKILLQ_SENTINEL_MASTER": group.master,
        "SKILLQ_SKILLS": "failover_skills",
        "SKILLQ_LEASE": "10",
    }


def sentinel_settings(group: SentinelGroup, **extra: Any) -> Settings:
    return Settings(
        broker_url=group.url(0),
        result_backend=group.url(1),
        redis_url=group.url(2),
        sentinel_master=group.master,
        **extra,
    )


def start_workers(
    start_worker: Callable[..., WorkerProcess], group: SentinelGroup
) -> list[WorkerProcess]:
    env = sentinel_env(group)
    settings = sentinel_settings(group)
    return [
        start_worker(
            pool=pool,
            concurrency=2,
            queues="failover",
            env=env,
            ready_url=group.url(2),
            ready_settings=settings,
        )
        for pool in ("prefork", "threads")
    ]


def test_jobs_submitted_across_a_failover_all_end_once(
    group: SentinelGroup, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    workers = start_workers(start_worker, group)
    runs = tmp_path / "runs"
    settings = sentinel_settings(group)
    # The sentinels report a live replica: submits and outcomes wait for it.
    assert required_replicas(settings) == 1
    submitted: dict[str, int] = {}
    refused: list[BaseException] = []
    old_port = group.primary_port()
    with SkillClient(settings) as client:
        chatty = client.submit("chatter", {"count": 60, "interval": 0.05})
        events: list[dict[str, Any]] = []

        def follow() -> None:
            events.extend(client_events(settings, chatty))

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        for n in range(300):
            if n == 100:
                group.kill_primary()
            try:
                submitted[client.submit("tally", {"runs": str(runs), "n": n})] = n
            except (redis.RedisError, NotReplicated, TimeoutError) as exc:
                refused.append(exc)
        new_port = group.wait_failover(old_port)
        assert new_port != old_port
        for job_id, n in submitted.items():
            assert client.result(job_id, timeout=120) == n
            status = client.status(job_id)
            assert status.state == "succeeded", (job_id, status)
        follower.join(timeout=120)
        assert not follower.is_alive()
        # Submits go on against the promoted replica.
        after = client.submit("tally", {"runs": str(runs), "n": 1000})
        assert client.result(after, timeout=60) == 1000
    # Every job whose submit returned ran; none twice (a run in flight at the
    # kill may be run again when its start had not reached the replica).
    counts = collections.Counter(runs.read_text().split())
    assert set(submitted) <= set(counts)
    twice = [job for job, seen in counts.items() if seen > 1]
    assert len(twice) <= 4, twice
    # Submits during the failover either returned or said why not.
    for error in refused:
        assert str(error), error
    # The follower saw every seq in order, or was told of a gap.
    seqs = [e["seq"] for e in events if e["kind"] == "tick"]
    assert seqs == sorted(seqs)
    gaps = [e for e in events if e["kind"] == "gap"]
    ticks = {e["payload"]["i"] for e in events if e["kind"] == "tick"}
    assert len(ticks) == 60 or gaps, (len(ticks), gaps)
    for worker in workers:
        assert worker.process is not None and worker.process.poll() is None


def client_events(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    with SkillClient(settings) as follower:
        return [dict(e) for e in follower.events(job_id, timeout=120)]


def http_job(url: str, token: str, args: dict[str, Any]) -> str:
    """Submit ``tally`` through the job API and wait until it succeeded; its id."""
    with httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        made = api.post("/v1/jobs", json={"skill": "tally", "args": args})
        assert made.status_code == 202, made.text
        job = str(made.json()["job_id"])

        def succeeded() -> bool:
            return bool(api.get(f"/v1/jobs/{job}").json().get("state") == "succeeded")

        wait_for(succeeded, 60, f"job {job} through the HTTP server")
        return job


@pytest.fixture
def http_server(group: SentinelGroup, stack_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``skillq serve`` on the group's sentinels: its URL and an admin token. It
    signs what it submits with the workers' key."""
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": "ops", "scopes": ["skillq:admin"]}
    env = {
        **sentinel_env(group),
        "SKILLQ_SERVER_TOKENS": json.dumps([entry]),
        "SKILLQ_AUTH_KEY": stack_env["SKILLQ_AUTH_KEY"],
    }
    with HttpServerProcess(env) as server:
        yield server.url, token


def test_the_old_primary_comes_back_as_a_replica_without_its_stale_state(
    group: SentinelGroup,
    http_server: tuple[str, str],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    workers = start_workers(start_worker, group)
    runs = tmp_path / "runs"
    settings = sentinel_settings(group)
    with SkillClient(settings) as client:
        first = client.submit("tally", {"runs": str(runs), "n": 1})
        assert client.result(first, timeout=60) == 1
        old = group.kill_primary()
        group.wait_failover(old.port)
        second = client.submit("tally", {"runs": str(runs), "n": 2})
        assert client.result(second, timeout=60) == 2
        old.start()  # its AOF holds what it had; the sentinels make it a replica

        def replica_again() -> bool:
            with redis.Redis(port=old.port, decode_responses=True) as back:
                info = back.info("replication")
                return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

        wait_for(replica_again, 60, "the old primary to rejoin as a replica")
        third = client.submit("tally", {"runs": str(runs), "n": 3})
        assert client.result(third, timeout=60) == 3
        # The HTTP server, started before the failover, serves across it.
        through_http = http_job(*http_server, {"runs": str(runs), "n": 4})
        with redis.Redis(port=old.port, db=2, decode_responses=True) as back:
            # It holds the new primary's data, second job included.
            assert wait_for(lambda: back.exists(f"skillq:job:{second}"), 30, "replication")
        assert client.status(first).state == "succeeded"
    assert collections.Counter(runs.read_text().split()) == {
        first: 1,
        second: 1,
        third: 1,
        through_http: 1,
    }
    # Each worker logged the failover it followed.
    for worker in workers:
        assert f":{old.port} to 127.0.0.1:" in worker.log_tail(400), worker.log_tail()
    # skillq health shows the primary, its replica and each sentinel's view.
    env = {**os.environ, **sentinel_env(group), "COLUMNS": "200"}
    done = subprocess.run(
        [SKILLQ, "health", "--json", "--hostname", workers[0].hostname],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)["sentinel"]
    assert view["primary"] == f"127.0.0.1:{group.primary_port()}"
    assert [r["address"] for r in view["replicas"]] == [f"127.0.0.1:{old.port}"]
    assert len(view["sentinels"]) == 3 and all("error" not in s for s in view["sentinels"])


def test_a_submit_that_reaches_no_replica_is_undone(
    group: SentinelGroup, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    start_worker(  # only so the skill is known; it takes nothing (nothing is queued)
        pool="threads",
        concurrency=1,
        queues="elsewhere",
        env=sentinel_env(group),
        ready_url=group.url(2),
        ready_settings=sentinel_settings(group),
    )
    # Two replicas asked for, one exists: WAIT falls short and the submit is undone.
    settings = sentinel_settings(group, redis_min_replicas=2, redis_replica_timeout=0.2)
    with SkillClient(settings) as client:
        with pytest.raises(NotReplicated) as refused:
            client.submit("tally", {"runs": str(tmp_path / "r"), "n": 1}, job_id="not-kept")
        assert "1 of the 2" in str(refused.value)
        port = group.primary_port()
        with redis.Redis(port=port, db=2, decode_responses=True) as records:
            assert not records.exists("skillq:job:not-kept")
            assert records.zscore("skillq:jobs", "not-kept") is None
        with redis.Redis(port=port, db=0, decode_responses=True) as broker:
            assert broker.llen("failover") == 0


def test_sentinel_urls_keep_passwords_out_of_messages() -> None:
    url = "sentinel://:hunter2@127.0.0.1:26379/0;sentinel://:hunter2@127.0.0.1:26380/0"
    shown = redacted(url)
    assert "hunter2" not in shown and shown.count("127.0.0.1") == 2


def test_passwords_for_redis_and_for_the_sentinels(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    redis_password, sentinel_password = "redis-pw-7f3a", "sentinel-pw-91c2"
    with SentinelGroup(password=redis_password, sentinel_password=sentinel_password) as group:
        env = {
            **sentinel_env(group),
            "SKILLQ_REDIS_PASSWORD": redis_password,
            "SKILLQ_SENTINEL_PASSWORD": sentinel_password,
        }
        settings = sentinel_settings(group).model_copy(
            update={
                "redis_password": SecretStr(redis_password),
                "sentinel_password": SecretStr(sentinel_password),
            }
        )
        worker = start_worker(
            pool="threads",
            concurrency=2,
            queues="failover",
            env=env,
            ready_url=group.url(2),
            ready_settings=settings,
        )
        with SkillClient(settings) as client:
            job = client.submit("tally", {"runs": str(tmp_path / "runs"), "n": 5})
            assert client.result(job, timeout=60) == 5
        # Without the sentinels' password the sentinels refuse to say where the primary is.
        refused = subprocess.run(
            [SKILLQ, "health", "--json"],
            env={**os.environ, **env, "SKILLQ_SENTINEL_PASSWORD": "wrong"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 6, refused.stderr  # redis_unavailable
        # Each sentinel is named and why it refused, not a client's repr.
        assert refused.stderr.count("AuthenticationError") == 3, refused.stderr
        assert "<redis" not in refused.stderr and "sentinel 127.0.0.1:" in refused.stderr
        done = subprocess.run(
            [SKILLQ, "health", "--json", "--hostname", worker.hostname],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for text in (
            done.stdout,
            done.stderr,
            refused.stdout,
            refused.stderr,
            worker.log_tail(400),
        ):
            assert redis_password not in text and sentinel_password not in text


def test_a_child_call_that_reaches_no_replica_is_refused_and_undone(
    group: SentinelGroup, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # The worker asks for two replicas (one exists), and gives up waiting for
    # its own outcome's soon; the caller's submit asks for none.
    strict = {
        **sentinel_env(group),
        "SKILLQ_REDIS_MIN_REPLICAS": "2",
        "SKILLQ_REDIS_REPLICA_TIMEOUT": "0.2",
        "SKILLQ_REDIS_OUTAGE_BUDGET": "1",
    }
    start_worker(
        pool="threads",
        concurrency=2,
        queues="failover",
        env=strict,
        ready_url=group.url(2),
        ready_settings=sentinel_settings(group),
    )
    runs = tmp_path / "runs"
    with SkillClient(sentinel_settings(group, redis_min_replicas=0)) as client:
        job = client.submit("calls_tally", {"runs": str(runs), "n": 1})
        came_back = client.result(job, timeout=60)
        assert came_back["ok"] is False and "NotReplicated" in came_back["error"], came_back
        # The undone child is gone from its parent's record too.
        assert client.status(job).children == []
    assert not runs.exists()  # the child never ran
    with group.server_client(group.primary_port(), db=2) as records:
        assert not [key for key in records.scan_iter("skillq:job:*") if job not in key]


def test_an_acknowledgement_on_a_channel_whose_connection_is_gone(group: SentinelGroup) -> None:
    """What stopped a worker in a failover run: Celery acknowledged a job on
    the channel it came from after the connection had gone and the channel's
    pool was dropped; kombu's Sentinel channel rebuilt the pool from
    ``self.connection.client`` (None): ``AttributeError``, "Unrecoverable
    error". The channel now keeps its pool through the sentinels."""
    app = configured_app(sentinel_settings(group), consuming=True)
    connection = app.connection_for_read()
    connection.connect()
    channel: Any = connection.default_channel
    with channel.conn_or_acquire() as client:
        assert client.ping()
    channel.qos._delivered["tag-1"] = None
    connection.close()
    channel._pool = None  # as kombu leaves it when it drops a channel's pools
    assert channel.connection is None
    channel.qos.ack("tag-1")  # raised AttributeError before
    assert "tag-1" not in channel.qos._delivered


def test_jobs_running_across_a_failover_finish_and_their_workers_serve_on(
    group: SentinelGroup, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    workers = start_workers(start_worker, group)
    signal = tmp_path / "open"
    settings = sentinel_settings(group)
    with SkillClient(settings) as client:
        jobs = [client.submit("gate", {"open": str(signal)}) for _ in range(4)]

        def all_running() -> bool:
            return all(client.status(job).state == "running" for job in jobs)

        wait_for(all_running, 60, "every gate job to run (two per worker)")
        old = group.kill_primary()
        group.wait_failover(old.port)
        signal.touch()
        assert sorted(client.result(job, timeout=90) for job in jobs) == sorted(jobs)
        for worker in workers:
            assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
            assert "Unrecoverable error" not in worker.log_tail(400)
        after = client.submit("tally", {"runs": str(tmp_path / "runs"), "n": 9})
        assert client.result(after, timeout=60) == 9


def test_answered_asks_resume_after_a_failover(
    group: SentinelGroup, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Jobs waiting for input while the primary dies resume once answered.

    Before: after the failover each worker's consumer had reconnected through
    another sentinel URL with kombu's plain transport, which holds a message
    whose eta is ahead (the waiting job's, brought forward by the answer) in
    memory and in kombu's unacked hash with no lease: the jobs stayed
    ``queued`` for ever. Broker, records and results share one database here,
    as with a single ``SKILLQ_BROKER_URL``."""
    env = {
        **sentinel_env(group),
        "SKILLQ_RESULT_BACKEND": group.url(0),
        "SKILLQ_REDIS_URL": group.url(0),
        "SKILLQ_LEASE": "5",
    }
    settings = sentinel_settings(group).model_copy(
        update={"result_backend": group.url(0), "redis_url": group.url(0)}
    )
    workers = [
        start_worker(
            pool="prefork",
            concurrency=2,
            queues="failover",
            env=env,
            ready_url=group.url(0),
            ready_settings=settings,
        )
        for _ in range(2)
    ]
    runs = tmp_path / "runs"
    with SkillClient(settings) as client:
        # Half sleep 3 s after their answer; delayed jobs wait parked across it too.
        jobs = [
            client.submit("ask_tally", {"runs": str(runs), "sleep": 3 * (n % 2)}) for n in range(20)
        ]
        delayed = [
            client.submit("tally", {"runs": str(runs), "n": n}, countdown=15) for n in range(4)
        ]

        def all_waiting() -> bool:
            return all(client.status(job).state == "input_required" for job in jobs)

        wait_for(all_waiting, 60, "every job to wait for input")
        old = group.kill_primary()
        group.wait_failover(old.port)
        # Answered once every worker's consumer is back (they reconnected through
        # the sentinel URLs in turn).
        wait_for(
            lambda: all(w.log_tail(400).count("(a Sentinel failover)") for w in workers),
            60,
            "both workers to follow the failover",
        )
        for job in jobs:
            answer_across_failover(client, job, "yes")
        for job in jobs:
            assert client.result(job, timeout=60) == "yes", client.status(job)
        for n, job in enumerate(delayed):
            assert client.result(job, timeout=60) == n, client.status(job)
    assert collections.Counter(runs.read_text().split()) == dict.fromkeys(jobs + delayed, 1)


def answer_across_failover(client: SkillClient, job: str, answer: Any) -> None:
    """Answer, retrying while the client still reaches for the old primary."""
    errors: list[BaseException] = []

    def answered() -> bool:
        try:
            client.respond(job, answer)
        except (redis.RedisError, TimeoutError) as exc:
            errors.append(exc)
            return False
        return True

    wait_for(answered, 30, f"an answer to reach job {job}: {errors[-1:]}")


def test_workers_consume_with_skillq_transport_after_a_failover(
    group: SentinelGroup, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """After a reconnect through another sentinel URL the consumer is still
    skillq's: a poison item is dead-lettered (kombu's own transport exits the
    worker on it) and a running job holds a lease (kombu's holds none)."""
    workers = start_workers(start_worker, group)
    settings = sentinel_settings(group)
    old = group.kill_primary()
    port = group.wait_failover(old.port)
    wait_for(
        lambda: all(w.log_tail(400).count("(a Sentinel failover)") for w in workers),
        60,
        "both workers to follow the failover",
    )
    signal = tmp_path / "open"
    with SkillClient(settings) as client, group.server_client(port, db=0) as broker:
        jobs = [client.submit("gate", {"open": str(signal)}) for _ in range(4)]
        wait_for(
            lambda: all(client.status(job).state == "running" for job in jobs),
            60,
            "every gate job to run (two per worker)",
        )
        assert broker.zcard("skillq:leases") == 4
        signal.touch()
        assert sorted(client.result(job, timeout=60) for job in jobs) == sorted(jobs)
        for _ in range(4):  # the slots are free: each worker reads some
            broker.lpush("failover", b"\x00 not json")
        wait_for(lambda: broker.llen("skillq:dead") >= 4, 30, "the poison items dead-lettered")
        after = client.submit("tally", {"runs": str(tmp_path / "runs"), "n": 3})
        assert client.result(after, timeout=60) == 3
    for worker in workers:
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
