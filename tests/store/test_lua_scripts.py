"""The Lua scripts are files with documented headers, each loaded into a real
Redis, and called by SHA only: no script text travels with a call."""

from __future__ import annotations

import re
from pathlib import Path

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
