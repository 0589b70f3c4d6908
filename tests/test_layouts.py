"""Documented Redis layouts other than one URL for everything.

Broker, Celery's result backend and skillq's records on three databases of
one server (results fused into skillq's scripts across databases), and a
result backend on another server (Celery stores results itself), and a
broker on another server (Celery publishes what the client's script cannot).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.result import AsyncResult

from tests.conftest import wait_for
from worker.app import create_app
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess


def on_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="module")
def other_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(directory=tmp_path_factory.mktemp("other-redis")) as server:
        yield server


@pytest.fixture(
    scope="module",
    params=[
        "prefork-three-databases",
        "threads-three-databases",
        "threads-other-server",
        "threads-broker-elsewhere",
    ],
)
def layout(
    request: pytest.FixtureRequest,
    start_worker: Callable[..., WorkerProcess],
    redis_server: EmbeddedRedis,
    other_server: EmbeddedRedis,
    settings: Settings,
) -> Iterator[tuple[Settings, WorkerProcess]]:
    pool, _, where = str(request.param).partition("-")
    broker = on_db(redis_server.url, 3)
    records = on_db(redis_server.url, 5)
    backend = on_db(redis_server.url, 4) if where == "three-databases" else other_server.url
    if where == "broker-elsewhere":  # the client cannot queue in its script: Celery publishes
        broker, backend = on_db(other_server.url, 1), on_db(redis_server.url, 4)
    env = {
        "SKILLQ_BROKER_URL": broker,
        "SKILLQ_RESULT_BACKEND": backend,
        "SKILLQ_REDIS_URL": records,
    }
    worker = start_worker(pool=pool, queues="default", env=env, ready_url=records)
    local = settings.model_copy(
        update={"broker_url": broker, "result_backend": backend, "redis_url": records}
    )
    yield local, worker
    worker.stop()


def test_jobs_results_and_celery_meta_land_where_configured(
    layout: tuple[Settings, WorkerProcess],
) -> None:
    settings, _ = layout
    producer = create_app(settings)
    with SkillClient(settings) as client:
        job_id = client.submit("echo", {"message": "placed"})
        assert client.result(job_id, timeout=30) == {"message": "placed"}
        events = list(client.events(job_id))
        assert events[-1]["payload"]["state"] == "succeeded"
        celery_view: AsyncResult[Any] = AsyncResult(job_id, app=producer)
        assert celery_view.get(timeout=30) == {"message": "placed"}
        meta = f"celery-task-meta-{job_id}"
        backend = redis.Redis.from_url(settings.effective_result_backend)
        records = redis.Redis.from_url(settings.effective_redis_url)
        broker = redis.Redis.from_url(settings.broker_url)
        assert backend.exists(meta)
        assert not records.exists(meta) and not broker.exists(meta)
        assert records.exists(f"skillq:job:{job_id}") and not broker.exists(f"skillq:job:{job_id}")

        failing = client.submit("boom", {})
        with pytest.raises(JobFailed):
            client.result(failing, timeout=30)
        failed_view: AsyncResult[Any] = AsyncResult(failing, app=producer)
        with pytest.raises(JobFailed, match="the handler gave up on purpose"):
            failed_view.get(timeout=30)
        assert "raise ValueError" in str(failed_view.traceback)


def test_cancel_and_refused_messages_in_the_layout(layout: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = layout
    producer = create_app(settings)
    with SkillClient(settings) as client:
        job_id = client.submit("sleepy", {"seconds": 60})
        wait_for(lambda: client.status(job_id).state == "running", 30, "the job to start")
        assert client.cancel(job_id)
        assert client.status(job_id).finished or wait_for(
            lambda: client.status(job_id).finished, 30, "the cancel"
        )
        assert client.status(job_id).state == "cancelled"
        refused = str(uuid.uuid4())
        hostile = producer.connection_for_write()
        hostile_app = create_app(settings)
        hostile_app.conf.update(task_serializer="pickle", accept_content=["pickle", "json"])
        hostile_app.send_task("skills.echo", kwargs={"args": {}}, task_id=refused)
        hostile.release()
        wait_for(lambda: _finished(client, refused), 30, "the refused job to fail")
        assert client.status(refused).error is not None
        view: AsyncResult[Any] = AsyncResult(refused, app=producer)
        with pytest.raises(JobFailed, match="JSON only"):
            view.get(timeout=30)
        dead = redis.Redis.from_url(settings.broker_url).llen("skillq:dead")
        assert dead >= 1


def _finished(client: SkillClient, job_id: str) -> bool:
    try:
        return client.status(job_id).finished
    except Exception:
        return False


def test_the_layout_is_described(tmp_path: Path) -> None:
    from worker.store.celery_results import meta_database

    base = Settings(broker_url="redis://h:6379/0", artifacts_url=tmp_path.as_uri())
    assert meta_database(base) == ""
    split = base.model_copy(update={"result_backend": "redis://h:6379/1"})
    assert meta_database(split) == "1"
    elsewhere = base.model_copy(update={"result_backend": "redis://other:6379/1"})
    assert meta_database(elsewhere) is None
    password = base.model_copy(update={"result_backend": "redis://:pw@h:6379/1"})
    assert meta_database(password) is None

    from worker.wire.task_message import DirectPublish

    direct = DirectPublish.for_settings(base.model_copy(update={"redis_url": "redis://h:6379/2"}))
    assert direct is not None and direct.database == "0"
    assert DirectPublish.for_settings(base) is not None
    assert DirectPublish.for_settings(base.model_copy(update={"direct_publish": False})) is None
    far = base.model_copy(update={"redis_url": "redis://other:6379/0"})
    assert DirectPublish.for_settings(far) is None


def test_hot_paths_never_scan_the_keyspace(
    tmp_path: Path, start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    """Registry reads, submits, waits, status and the backlog cost the same with a
    million job records in Redis as with none: no SCAN, HSCAN or KEYS anywhere."""
    from worker.client.backlog import queue_depths
    from worker.store.keys import Keys

    with EmbeddedRedis(directory=tmp_path / "redis") as server:
        worker = start_worker(
            pool="threads",
            queues="default",
            env={"SKILLQ_BROKER_URL": server.url},
            ready_url=server.url,
        )
        admin = redis.Redis.from_url(server.url)
        with admin.pipeline(transaction=False) as pipe:
            for n in range(2000):  # unrelated history
                pipe.hset(f"skillq:job:old-{n}", mapping={"state": "succeeded", "skill": "echo"})
            pipe.execute()
        local = settings.model_copy(update={"broker_url": server.url})
        admin.config_resetstat()
        with SkillClient(local) as client:
            assert any(s.name == "echo" for s in client.skills())
            jobs = [client.submit("echo", {"message": str(n)}) for n in range(20)]
            assert [client.result(j, timeout=30) for j in jobs][-1] == {"message": "19"}
            assert client.status(jobs[0]).state == "succeeded"
            depths = queue_depths(admin, admin, Keys(), [])
            assert "default" in {d.queue for d in depths}
        stats: Any = admin.info("commandstats")
        used = {name.removeprefix("cmdstat_") for name in stats}
        assert not used & {"scan", "hscan", "keys", "sscan", "zscan"}, sorted(used)
        assert "evalsha" in used or "eval" in used  # the calls above did reach this Redis
        worker.stop()
