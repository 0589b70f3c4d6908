"""``skillq dev``, ``health --wait`` and ``token new --add-to``: the commands
the quick start and the deploying page use, and their mistakes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import redis

from worker.embedded import EmbeddedRedis, free_port

SKILLQ = str(Path(sys.executable).parent / "skillq")


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SKILLQ, *args],
        env={**os.environ, "COLUMNS": "200", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_starts_a_redis_where_none_answers_and_stops_it_with_itself(tmp_path: Path) -> None:
    url = f"redis://localhost:{free_port()}/0"
    env = {"HOME": str(tmp_path), "SKILLQ_BROKER_URL": url, "SKILLQ_HEARTBEAT_INTERVAL": "1"}
    (tmp_path / "hi.py").write_text(
        "from worker import skill\n\n\n@skill('hi')\nasync def hi(ctx, args):\n    return 'hi'\n"
    )
    dev = subprocess.Popen(
        [SKILLQ, "dev", "--skills", "hi", "-c", "1"],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run(env, "health", "--wait", "60").returncode == 0
        done = run(env, "submit", "hi", "--wait", "--timeout", "30")
        assert done.returncode == 0 and done.stdout.strip() == '"hi"', done.stderr
        assert (tmp_path / ".skillq" / "dev" / "redis" / "redis.log").exists()
    finally:
        dev.send_signal(signal.SIGTERM)
        _, stderr = dev.communicate(timeout=60)
    assert "(started here)" in stderr
    probe = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        refused = False
        try:
            probe.ping()
        except redis.ConnectionError:
            refused = True
        assert refused, "skillq dev left its Redis running"
    finally:
        probe.close()


def test_dev_uses_a_redis_that_answers_and_leaves_it_running(tmp_path: Path) -> None:
    server = EmbeddedRedis(directory=tmp_path / "redis").start()
    env = {"HOME": str(tmp_path), "SKILLQ_BROKER_URL": server.url}
    dev = subprocess.Popen(
        [SKILLQ, "dev", "-c", "1"],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run(env, "health", "--wait", "60").returncode == 0
        dev.send_signal(signal.SIGTERM)
        _, stderr = dev.communicate(timeout=60)
        assert "(already running)" in stderr
        assert redis.Redis.from_url(server.url).ping()
        assert not (tmp_path / ".skillq" / "dev").exists()
    finally:
        dev.kill()
        dev.wait()
        server.stop()


def test_dev_does_not_start_a_redis_for_another_host(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "SKILLQ_BROKER_URL": "redis://redis.invalid:6379/0"}
    done = run(env, "dev")
    assert done.returncode == 2, done.stderr
    assert "SKILLQ_BROKER_URL" in done.stderr and "only on this machine" in done.stderr
    assert "Traceback" not in done.stderr


def test_health_wait_gives_up_at_its_deadline(tmp_path: Path) -> None:
    server = EmbeddedRedis(directory=tmp_path / "redis").start()
    try:
        done = run({"SKILLQ_BROKER_URL": server.url}, "health", "--wait", "1")
        assert done.returncode == 1
        assert "no live worker at all" in done.stderr
    finally:
        server.stop()


def test_token_new_adds_its_entry_to_a_tokens_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    first = run({}, "token", "new", "alice", "--scope", "reports", "--add-to", str(tokens))
    second = run({}, "token", "new", "bob", "--add-to", str(tokens))
    assert first.returncode == 0 and second.returncode == 0
    entries = json.loads(tokens.read_text())
    assert [e["subject"] for e in entries] == ["alice", "bob"]
    assert entries[0]["scopes"] == ["reports"]
    assert first.stdout.strip() not in tokens.read_text(), "only the hash is kept"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    tokens.write_text('{"not": "a list"}')
    refused = run({}, "token", "new", "carol", "--add-to", str(tokens))
    assert refused.returncode == 2 and "not a JSON list" in refused.stderr
    assert json.loads(tokens.read_text()) == {"not": "a list"}, "a bad file is left as it was"
