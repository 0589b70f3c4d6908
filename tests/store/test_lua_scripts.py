"""The Lua scripts are files with documented headers, each loaded into a real
Redis, and called by SHA only: no script text travels with a call."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis

from worker.embedded import EmbeddedRedis
from worker.store.scriptfiles import INCLUDE, load, names

PACKAGE = Path(__file__).resolve().parents[2] / "worker"


def test_every_script_is_a_documented_file_that_redis_accepts(
    redis_server: EmbeddedRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    shipped = names()
    assert {"prelude", "start", "emit", "finish", "submit", "cancel", "admit", "live"} <= set(
        shipped
    )
    for name in shipped:
        raw = (PACKAGE / "store" / "lua" / f"{name}.lua").read_text()
        header = raw.split("\n\n", 1)[0]
        assert header.startswith("-- ") and re.search(r"KEYS|ARGV", header), name
        text = load(name)
        assert INCLUDE not in text, name  # the prelude is in, not the directive
        sha = client.script_load(text)
        assert client.script_exists(sha) == [True], name


def test_no_script_is_sent_in_full_with_a_call() -> None:
    """EVAL sends the whole text each time; registered scripts use EVALSHA."""
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.eval\(", line)
    ]
    assert found == []


def test_the_key_layout_lives_in_keys_py_alone() -> None:
    """The scripts that build keys take the parts after the prefix from ``KEY``,
    which :func:`lua_layout` writes from :class:`Keys`; none spells one out."""
    from worker.store.keys import Keys, lua_layout

    for path in (PACKAGE / "store" / "lua").glob("*.lua"):
        assert not re.search(r"prefix \.\. '[:\w]", path.read_text()), path.name
    table = lua_layout()
    assert f'job = "{Keys("").job("")}"' in table
    assert f'running = "{Keys("").running_index()}"' in table
    assert "KEY.job" in load("start") and table in load("start")


def test_scripts_sent_on_the_connection_itself_behave_as_redis_py_sends_them(
    tmp_path: Path,
) -> None:
    # The start, finish and take of every job skip redis-py's per-command
    # machinery. They must still: answer what redis-py's EVALSHA answers,
    # load themselves on a Redis that lost its scripts, keep the connection
    # in step after a script error, ride out a restart on the connection's
    # own retries, and leave pipelines and kombu's key-prefixing client to
    # redis-py.
    from kombu.transport.redis import PrefixedStrictRedis
    from redis.backoff import ExponentialBackoff
    from redis.connection import PythonRespSerializer
    from redis.retry import Retry

    from worker.store.scriptfiles import DirectScript, direct

    with EmbeddedRedis(appendonly=True, directory=tmp_path / "redis") as server:
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=20)
        held = redis.Redis.from_url(server.url, single_connection_client=True, retry=retry)
        pooled = redis.Redis.from_url(server.url, decode_responses=True, retry=retry)
        text = "redis.call('SET', KEYS[1], ARGV[1]); return {KEYS[1], ARGV[1], #ARGV}"
        for client in (held, pooled):
            script = DirectScript(client, text)
            got = script(keys=["k"], args=["v\u00e9", "2"])
            assert got == client.evalsha(script.sha, 1, "k", "v\u00e9", "2")
            client.script_flush()
            assert script(keys=["k"], args=["x"]) == client.evalsha(script.sha, 1, "k", "x")
            failing = DirectScript(client, "return redis.error_reply('no, ' .. ARGV[1])")
            try:
                failing(keys=[], args=["because"])
                raise AssertionError("a script's error must raise")
            except redis.ResponseError as exc:
                assert "no, because" in str(exc)
            assert client.ping() is True  # the error's reply was read in full
            cases: list[tuple[Any, type[Exception]]] = [
                ("\ud800", UnicodeEncodeError),
                ({"a": 1}, redis.DataError),
            ]
            for hostile, raised in cases:
                with pytest.raises(raised):
                    script(keys=["k"], args=[hostile])
                with pytest.raises(raised):
                    client.evalsha(script.sha, 1, "k", hostile)
            assert client.ping() is True
            server.restart()
            assert script(keys=["k"], args=["after"])[1] in (b"after", "after")
        # Without hiredis redis-py packs in Python: the direct path lets it.
        python_packed = redis.Redis.from_url(server.url, single_connection_client=True)
        python_packed.ping()
        conn: Any = python_packed.connection
        conn._command_packer = PythonRespSerializer(conn._buffer_cutoff, conn.encoder.encode)
        assert DirectScript(python_packed, text)(keys=["q"], args=["\u00e9", "2"]) == [
            b"q",
            "\u00e9".encode(),
            2,
        ]
        pipe = held.pipeline(transaction=False)
        DirectScript(held, text)(keys=["p"], args=["1"], client=pipe)
        assert pipe.execute()[0][1] == b"1"
        assert direct(held) and not direct(pipe)
        assert not direct(PrefixedStrictRedis(global_keyprefix="a:"))
