"""Real parts for integration tests: redis-server, moto's S3 server, celery workers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from worker.client import SkillClient
from worker.embedded import EmbeddedRedis, S3Server, WorkerProcess, wait_for
from worker.settings import Settings

__all__ = ["wait_for"]  # re-exported for the test modules

HERE = Path(__file__).parent
BUCKET = "skillq-test"
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
    """The external skill module, copied outside the repository."""
    target = tmp_path_factory.mktemp("userpkg")
    shutil.copy(HERE / "ext" / "ext_skills.py", target / "ext_skills.py")
    return target


@pytest.fixture(scope="session")
def stack_env(
    redis_server: EmbeddedRedis, s3_endpoint: str, s3: Any, ext_dir: Path
) -> dict[str, str]:
    """Environment that points workers, clients and the CLI at the test's real parts."""
    env = {
        **AWS,
        "SKILLQ_BROKER_URL": redis_server.url,
        "SKILLQ_ARTIFACTS_URL": f"s3://{BUCKET}/artifacts",
        "SKILLQ_S3_ENDPOINT_URL": s3_endpoint,
        "SKILLQ_SKILLS": "tasks,ext_skills",
        "SKILLQ_SECRET_OPENAI_KEY": SECRET_VALUE,
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
    return Settings(
        broker_url=stack_env["SKILLQ_BROKER_URL"],
        artifacts_url=stack_env["SKILLQ_ARTIFACTS_URL"],
        s3_endpoint_url=stack_env["SKILLQ_S3_ENDPOINT_URL"],
    )


@pytest.fixture(scope="session")
def start_worker(
    stack_env: dict[str, str], redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real `celery worker` subprocesses; all are stopped at session end."""
    started: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        pool: str = "prefork",
        concurrency: int = 2,
        queues: str = "default,ext",
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> WorkerProcess:
        process = WorkerProcess(
            {**stack_env, **(env or {})},
            pool=pool,
            concurrency=concurrency,
            queues=queues,
            log_path=logs / f"worker-{len(started)}.log",
            **kwargs,
        ).start()
        started.append(process)
        process.wait_ready(redis_server.url)
        return process

    yield start
    for process in started:
        process.stop(timeout=10)


@pytest.fixture(scope="module", params=["prefork", "threads"])
def worker(
    request: pytest.FixtureRequest, start_worker: Callable[..., WorkerProcess]
) -> Iterator[WorkerProcess]:
    """One worker per pool kind, shared by a module's tests."""
    process = start_worker(pool=request.param, concurrency=2)
    yield process
    process.stop(timeout=10)
    if request.session.testsfailed:
        print(f"--- worker log ({request.param}) ---\n{process.log_tail(60)}")


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[SkillClient]:
    """A synchronous client pointed at the test's Redis and S3."""
    with SkillClient(settings) as instance:
        yield instance
