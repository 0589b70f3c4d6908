"""skillq's Lua scripts, read from the ``.lua`` files shipped beside this module.

Each file's header documents its KEYS and ARGV and what it returns. A line
``-- include: prelude`` stands for ``prelude.lua``: the helpers every job
script shares (``emit``, ``status``, ``touch``, ``end_children``) and the
locals naming the common KEYS and ARGV; ``-- include: key layout`` stands for
the ``KEY`` table :func:`worker.store.keys.lua_layout` writes from ``keys.py``,
so the scripts build keys exactly as Python names them. A script is read once per process;
callers register it (``register_script``) and call it by its SHA (EVALSHA),
so its text reaches Redis once per connection, never with every call.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

from .keys import lua_layout

INCLUDE = "-- include: prelude\n"
LAYOUT = "-- include: key layout\n"


@cache
def load(name: str) -> str:
    """The text of ``lua/<name>.lua``, with the prelude included where it asks."""
    text = (files(__package__ or "worker.store") / "lua" / f"{name}.lua").read_text("utf-8")
    if INCLUDE in text:
        text = text.replace(INCLUDE, load("prelude"), 1)
    # The key layout, written from keys.py: the one place it is defined.
    return text.replace(LAYOUT, lua_layout(), 1)


def names() -> list[str]:
    """Every script shipped (the prelude too), for checks."""
    folder = files(__package__ or "worker.store") / "lua"
    return sorted(
        item.name.removesuffix(".lua") for item in folder.iterdir() if item.name.endswith(".lua")
    )


class ClientScript:
    """A script called by SHA on whichever client the caller holds (kombu's
    pooled ones), loaded on the first call that finds Redis without it."""

    def __init__(self, name: str) -> None:
        self.text = load(name)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()  # noqa: S324 (Redis's name)

    def __call__(self, *, keys: list[str], args: list[Any], client: Any) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # a new or restarted Redis: load it once, by its text
            client.script_load(self.text)
            return client.evalsha(self.sha, len(keys), *keys, *args)
