"""Real parts for integration tests: redis-server, moto's S3 server, celery workers."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from celery import Celery
from pydantic import SecretStr

from worker.app import create_app
from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, S3Server, WorkerProcess, wait_for

__all__ = ["wait_for"]  # re-exported for the test modules

HERE = Path(__file__).parent
BUCKET = "skillq-test"
# Like production: workers verify signed calls, with a key made for this run.
AUTH_KEY = secrets.token_hex(32)
GRANT_KEY = secrets.token_hex(32)  # workspace grants, shared by clients and workers
SECRET_VALUE = "sk-test-4f9d2c7e1b"
AWS = S3Server.CREDENTIALS


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with S3Server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server.url


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="session")
def ext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The external skill modules, copied outside the repository."""
    target = tmp_path_factory.mktemp("userpkg")
    for module in (HERE / "ext").glob("*.py"):
        shutil.copy(module, target / module.name)
    return target


@pytest.fixture(scope="session")
def stack_env(
    redis_server: EmbeddedRedis, s3_endpoint: str, s3: Any, ext_dir: Path
) -> dict[str, str]:
    """Environment that points workers, clients and the CLI at the test's real parts."""
    return stack_env_for(redis_server, s3_endpoint, ext_dir)


def stack_env_for(redis_server: EmbeddedRedis, s3_endpoint: str, ext_dir: Path) -> dict[str, str]:
    env = {
        **AWS,
        "SKILLQ_BROKER_URL": redis_server.url,
        "SKILLQ_ARTIFACTS_URL": f"s3://{BUCKET}/artifacts",
        "SKILLQ_S3_ENDPOINT_URL": s3_endpoint,
        "SKILLQ_SKILLS": "tasks,ext_skills",
        "SKILLQ_SECRET_OPENAI_KEY": SECRET_VALUE,
        "SKILLQ_AUTH_KEY": AUTH_KEY,
        "SKILLQ_GRANT_KEY": GRANT_KEY,
        "SKILLQ_HEARTBEAT_INTERVAL": "1",
        "SKILLQ_CANCEL_GRACE": "1",
        "SKILLQ_CANCEL_KILL_AFTER": "1",
        "SKILLQ_HARD_TIME_LIMIT_MARGIN": "2",
        "PYTHONPATH": os.pathsep.join([str(ext_dir), os.environ.get("PYTHONPATH", "")]),
    }
    for key, value in AWS.items():
        os.environ.setdefault(key, value)
    return env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    return settings_for(stack_env)


def settings_for(stack_env: dict[str, str]) -> Settings:
    return Settings(
        broker_url=stack_env["SKILLQ_BROKER_URL"],
        artifacts_url=stack_env["SKILLQ_ARTIFACTS_URL"],
        s3_endpoint_url=stack_env["SKILLQ_S3_ENDPOINT_URL"],
        auth_key=SecretStr(AUTH_KEY),
        grant_key=SecretStr(GRANT_KEY),
    )


STARTED_WORKERS = pytest.StashKey[list[WorkerProcess]]()
WORKERS_BEFORE_TEST = pytest.StashKey[int]()


WORKERS_BEFORE_CALL = pytest.StashKey[int]()


CURRENT_ITEM = pytest.StashKey[pytest.Item]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--worker-pool",
        default=None,
        help="run the prefork and threads workers tests start in this pool instead "
        "(async): the job-path tests in the async pool; tests marked keeps_pool keep theirs",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "keeps_pool: the test is about its pool's own behaviour (a prefork child's death, "
        "Celery's hard time limit, a handler blocking a thread's loop): --worker-pool "
        "leaves its workers as they are",
    )


def pool_for(config: pytest.Config, pool: str) -> str:
    """The pool a test's worker runs in: ``--worker-pool`` for prefork and threads."""
    chosen = config.getoption("--worker-pool")
    item = config.stash.get(CURRENT_ITEM, None)
    if not chosen or pool not in ("prefork", "threads"):
        return pool
    if item is not None and item.get_closest_marker("keeps_pool") is not None:
        return pool
    return str(chosen)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[WORKERS_BEFORE_TEST] = len(item.config.stash.get(STARTED_WORKERS, []))
    item.config.stash[CURRENT_ITEM] = item


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Workers a test's body starts end with it (fixtures' workers live on).

    Left running, every test's workers would idle on to the end of the
    session, each polling Redis several times a second: by the last tests
    dozens of them load the two cores every later test shares. They are told
    to stop here and reaped in the background (``stop_all``).
    """
    started = item.config.stash.setdefault(STARTED_WORKERS, [])
    before = len(started)
    yield
    stop_all(started[before:], wait=False)


def stop_all(workers: list[WorkerProcess], *, wait: bool, timeout: float = 10.0) -> None:
    """SIGTERM every worker at once (a warm shutdown each), then reap them:
    here, or in a thread when ``wait`` is false; past ``timeout``, SIGKILL."""
    running = [w for w in workers if w.process is not None and w.process.poll() is None]
    for worker in running:
        assert worker.process is not None
        worker.process.terminate()

    def reap() -> None:
        for worker in running:
            worker.stop(timeout=timeout)

    if wait:
        reap()
    else:
        threading.Thread(target=reap, name="reap-workers", daemon=True).start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report ends with the log tail of every worker it could have used.

    That is each worker started during the test and each one still running,
    so a failure in CI says what the worker saw, not only what the test saw.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    workers = item.config.stash.get(STARTED_WORKERS, [])
    first_new = item.stash.get(WORKERS_BEFORE_TEST, len(workers))
    for index, process in enumerate(workers):
        alive = process.process is not None and process.process.poll() is None
        if index >= first_new or alive:
            report.sections.append(
                (f"worker {process.hostname} log (last 60 lines)", process.log_tail(60))
            )


@pytest.fixture(scope="session")
def start_worker(
    stack_env: dict[str, str],
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real `celery worker` subprocesses; all are stopped at session end.

    ``ready_url`` and ``ready_prefix``: the Redis and key prefix the worker
    announces itself under, when a test points it elsewhere.
    """
    yield from worker_starter(stack_env, redis_server, tmp_path_factory, pytestconfig)


def worker_starter(
    stack_env: dict[str, str],
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Callable[..., WorkerProcess]]:
    """The body of ``start_worker``: the workers it started are stopped when it resumes."""
    started = pytestconfig.stash.setdefault(STARTED_WORKERS, [])
    mine: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        pool: str = "prefork",
        concurrency: int = 2,
        queues: str = "default,ext",
        env: dict[str, str] | None = None,
        ready_url: str | None = None,
        ready_prefix: str = "skillq",
        ready_settings: Settings | None = None,
        **kwargs: Any,
    ) -> WorkerProcess:
        process = WorkerProcess(
            {**stack_env, **(env or {})},
            pool=pool_for(pytestconfig, pool),
            concurrency=concurrency,
            queues=queues,
            log_path=logs / f"worker-{len(started)}.log",
            **kwargs,
        ).start()
        started.append(process)
        mine.append(process)
        process.wait_ready(
            ready_url or redis_server.url, key_prefix=ready_prefix, settings=ready_settings
        )
        return process

    yield start
    stop_all(mine, wait=True)


@pytest.fixture(scope="module", params=["prefork", "threads"])
def worker(
    request: pytest.FixtureRequest, start_worker: Callable[..., WorkerProcess]
) -> Iterator[WorkerProcess]:
    """One worker per pool kind, shared by a module's tests."""
    process = start_worker(pool=request.param, concurrency=2)
    yield process
    process.stop(timeout=10)


@pytest.fixture(scope="session")
def producer(settings: Settings) -> Celery:
    """A plain Celery producer: the wire contract is all it knows."""
    return create_app(settings)


@pytest.fixture
def raw(settings: Settings) -> Iterator[redis.Redis]:
    """A plain Redis client on skillq's database, for what no API shows."""
    client = redis.Redis.from_url(settings.effective_redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[SkillClient]:
    """A synchronous client pointed at the test's Redis and S3."""
    with SkillClient(settings) as instance:
        yield instance


def unacknowledged(raw: redis.Redis) -> list[tuple[str, str]]:
    """(task, job id) of every message a worker holds without having acknowledged it."""
    found = []
    for value in raw.hvals("unacked"):
        headers = json.loads(value)[0].get("headers", {})
        found.append((str(headers.get("task")), str(headers.get("id"))))
    return found


def parked(raw: redis.Redis, job_id: str, prefix: str = "skillq") -> bool:
    """Whether a message of the job waits in Redis for its eta (``delay_park.lua``)."""
    for value in raw.hvals(f"{prefix}:delayed:messages"):
        body = value.split(b"\n", 1)[1] if isinstance(value, bytes) else value.split("\n", 1)[1]
        if json.loads(body).get("headers", {}).get("id") == job_id:
            return True
    return False


def held(raw: redis.Redis, job_id: str) -> bool:
    """Whether a message of the job is still to be handled: held by a worker, or
    waiting in Redis for its eta."""
    return any(held_id == job_id for _, held_id in unacknowledged(raw)) or parked(raw, job_id)
