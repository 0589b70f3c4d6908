"""Redis misbehaving around running jobs: lost subscriptions, long outages, bad config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess
from worker.store.keys import Keys


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=True, directory=tmp_path / "redis") as server:
        yield server


def subscribers(admin: redis.Redis, channel: str) -> int:
    counts: Any = admin.pubsub_numsub(channel)
    return int(counts[0][1])


def test_a_subscription_cut_by_redis_never_hangs_a_caller(
    own_redis: EmbeddedRedis,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """The terminal event is the one message the subscription loses.

    Redis cuts a subscriber whose output buffer passes its limit; redis-py
    reconnects and resubscribes without a word, so a caller that trusted
    pub/sub would wait forever for an event that was already published.
    """
    env = {"SKILLQ_BROKER_URL": own_redis.url}
    worker = start_worker(pool="threads", queues="default", env=env, ready_url=own_redis.url)
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("client-output-buffer-limit", "pubsub 1024 1024 0")
    gate = tmp_path / "gate"
    local = settings.model_copy(update={"broker_url": own_redis.url})
    with SkillClient(local) as client, ThreadPoolExecutor(2) as pool:
        job_id = client.submit("shouts", {"size": 40_000, "gate": str(gate)})
        waiting = pool.submit(client.result, job_id, 60)
        following = pool.submit(lambda: list(client.events(job_id, timeout=60)))
        channel = Keys().events(job_id)
        wait_for(lambda: subscribers(admin, channel) == 2, 20, "both callers to subscribe")
        gate.touch()
        with pytest.raises(JobFailed, match="xxxx"):
            waiting.result(timeout=90)
        events = following.result(timeout=90)
    assert events[-1]["kind"] == "status" and events[-1]["payload"]["state"] == "failed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    worker.stop()


def test_killed_pubsub_connections_never_hang_a_caller(
    own_redis: EmbeddedRedis,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
    tmp_path: Path,
) -> None:
    env = {"SKILLQ_BROKER_URL": own_redis.url}
    worker = start_worker(pool="threads", queues="default", env=env, ready_url=own_redis.url)
    admin = redis.Redis.from_url(own_redis.url)
    local = settings.model_copy(update={"broker_url": own_redis.url})
    gate = tmp_path / "gate"
    with SkillClient(local) as client, ThreadPoolExecutor(1) as pool:
        job_id = client.submit("fragile", {"seconds": 0, "gate": str(gate)})
        waiting = pool.submit(client.result, job_id, 60)
        wait_for(lambda: subscribers(admin, Keys().events(job_id)) == 1, 20, "the caller")
        admin.client_kill_filter(_type="pubsub")
        gate.touch()
        assert isinstance(waiting.result(timeout=90), int)
    worker.stop()


def statuses(client: SkillClient, job_id: str) -> list[str]:
    return [e["payload"]["state"] for e in client.events(job_id) if e["kind"] == "status"]


# Heartbeats (one a second in the tests' workers) that fail while Redis is
# away: 15 of them is an outage longer than redis-py's own retries (~6 s).
OUTAGE_HEARTBEATS = 15


def test_jobs_running_through_a_long_redis_outage_run_once_and_keep_their_outcome(
    tmp_path: Path, start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    server = EmbeddedRedis(appendonly=True, directory=tmp_path / "redis").start()
    try:
        env = {"SKILLQ_BROKER_URL": server.url}
        worker = start_worker(
            pool="threads", concurrency=2, queues="default", env=env, ready_url=server.url
        )
        local = settings.model_copy(update={"broker_url": server.url})
        gate = tmp_path / "gate"
        with SkillClient(local) as client:
            quiet = client.submit("fragile", {"seconds": 0, "gate": str(gate)})
            chatty = client.submit("story", {"words": 60, "delay": 0.25})
            wait_for(lambda: (client.status(quiet).progress or "").startswith("pid"), 30, "quiet")
            wait_for(lambda: client.status(chatty).last_seq >= 3, 30, "chatty to stream")
            server.stop()
            gate.touch()  # the quiet job finishes while Redis is away
            wait_for(
                lambda: f"storing the outcome of job {quiet}" in worker.log_path.read_text(),
                30,
                "the worker to keep the outcome and retry",
            )
            # Redis stays away until the worker itself has lived through the outage.
            wait_for(
                lambda: (
                    worker.log_path.read_text().count("heartbeat to Redis failed")
                    >= OUTAGE_HEARTBEATS
                ),
                60,
                f"{OUTAGE_HEARTBEATS} failed heartbeats",
                interval=0.5,
            )
            server.start()
            assert isinstance(client.result(quiet, timeout=90), int)
            assert client.result(chatty, timeout=90)["words"] == 60
            for job_id in (quiet, chatty):
                status = client.status(job_id)
                assert status.attempts == 1, job_id
                assert statuses(client, job_id) == ["running", "succeeded"]
                seqs = [e["seq"] for e in client.events(job_id)]
                assert seqs == list(range(1, len(seqs) + 1))
            raw = redis.Redis.from_url(server.url)
            wait_for(lambda: raw.hlen("unacked") == 0, 30, "both messages to be acknowledged")
            assert sum(1 for e in client.events(chatty) if e["kind"] == "text_delta") == 60
        worker.stop()
    finally:
        server.close()


def test_workers_and_health_refuse_a_redis_that_evicts(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    with EmbeddedRedis(directory=tmp_path / "redis") as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "allkeys-lru")
        env = {**stack_env, "SKILLQ_BROKER_URL": server.url}
        refused = WorkerProcess(env, pool="threads", queues="default").start()
        assert refused.process is not None
        assert refused.process.wait(60) == 2
        log = refused.log_path.read_text()
        assert "refusing to start" in log and "maxmemory-policy 'allkeys-lru'" in log
        assert "noeviction" in log
        health = subprocess.run(
            [str(Path(sys.executable).parent / "skillq"), "health"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 2, health.stdout + health.stderr
        assert "allkeys-lru" in health.stderr
        # With noeviction the worker starts, and says that nothing is persisted.
        admin.config_set("maxmemory-policy", "noeviction")
        accepted = WorkerProcess(env, pool="threads", queues="default").start()
        try:
            accepted.wait_ready(server.url)
            assert "has no persistence" in accepted.log_path.read_text()
        finally:
            accepted.stop()


def pubsub_ids(admin: redis.Redis) -> set[str]:
    return {str(item["id"]) for item in admin.client_list(_type="pubsub")}


def sse_seqs(url: str, job_id: str) -> list[tuple[int, str]]:
    """(seq, kind) of a job's SSE stream over HTTP, to its end."""
    import httpx

    found: list[tuple[int, str]] = []
    with (
        httpx.Client(base_url=url, timeout=90) as http,
        http.stream("GET", f"/v1/jobs/{job_id}/events") as response,
    ):
        assert response.status_code == 200
        seq, kind = 0, ""
        for line in response.iter_lines():
            if line.startswith("id:"):
                seq = int(line[3:])
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                found.append((seq, kind))
    return found


def test_a_servers_shared_subscription_survives_being_cut(
    own_redis: EmbeddedRedis,
    start_worker: Callable[..., WorkerProcess],
    stack_env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """All of a server's streams share one pub/sub connection: when Redis cuts it
    (output buffer limit, CLIENT KILL) every stream catches up from the job's
    stream and ends with the terminal event, in order, with no gap."""
    from worker.embedded import HttpServerProcess

    env = {**stack_env, "SKILLQ_BROKER_URL": own_redis.url}
    worker = start_worker(pool="threads", queues="default", env=env, ready_url=own_redis.url)
    admin = redis.Redis.from_url(own_redis.url)
    local = settings.model_copy(update={"broker_url": own_redis.url})
    gates = [tmp_path / "first", tmp_path / "second"]
    with (
        SkillClient(local) as client,
        HttpServerProcess(env) as server,
        ThreadPoolExecutor(6) as pool,
    ):
        shouting = client.submit("shouts", {"size": 40_000, "gate": str(gates[0])})
        working = client.submit("fragile", {"seconds": 0, "gate": str(gates[1])})
        streams = [pool.submit(sse_seqs, server.url, job) for job in (shouting, working) * 3]
        channels = [Keys().events(job) for job in (shouting, working)]
        wait_for(
            lambda: all(subscribers(admin, channel) == 1 for channel in channels),
            20,
            "the server's one follower of each job",
        )
        before = pubsub_ids(admin)
        admin.config_set("client-output-buffer-limit", "pubsub 1024 1024 0")
        gates[0].touch()  # 40 kB of error cut the shared connection
        wait_for(lambda: client.status(shouting).finished, 30, "the shouting job")
        wait_for(lambda: pubsub_ids(admin) - before, 30, "the server to subscribe anew")
        admin.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")
        admin.client_kill_filter(_type="pubsub")
        gates[1].touch()
        for stream in streams:
            seqs = stream.result(timeout=90)
            assert [seq for seq, _ in seqs] == list(range(1, len(seqs) + 1)), seqs
            assert seqs[-1][1] == "status"
    worker.stop()
