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

import hiredis
import redis
from redis.commands.core import Script
from redis.connection import HiredisRespSerializer
from redis.exceptions import DataError, NoScriptError, ResponseError

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


def evalsha_direct(client: redis.Redis, sha: str, keys: list[Any], args: list[Any]) -> Any:
    """``EVALSHA`` on the client's own connection, without redis-py's per-command
    machinery (its pool checks, observability hooks, argument filtering, and a
    pass over every argument before hiredis packs them): 100,000 fewer
    instructions per call (callgrind); a prefork child's path for a no-op job
    fell from 860,000 instructions to 661,000. Paid on every job's start,
    finish and take. The connection's retry policy (``SKILLQ_REDIS_RETRIES``),
    the client's lock and its pool are kept, so only the cost changes.
    """
    held = client.connection
    pool = client.connection_pool
    conn: Any = held if held is not None else pool.get_connection()
    lock = client.single_connection_lock if held is not None else None
    command = ("EVALSHA", sha, len(keys), *keys, *args)

    def call() -> Any:
        if packed is None:
            conn.send_command(*command)
        else:
            conn.send_packed_command(packed)
        return conn.read_response()

    def failed(_: Exception) -> None:
        conn.disconnect()

    if lock is not None:
        lock.acquire()
    try:
        packed = _packed(conn, command)
        return conn.retry.call_with_retry(call, failed)
    except (ResponseError, DataError, UnicodeError):
        raise  # Redis answered, or nothing was sent: the connection is in step
    except BaseException:
        conn.disconnect()  # a reply may be half read: never reuse the connection
        raise
    finally:
        if lock is not None:
            lock.release()
        if held is None:
            pool.release(conn)


def _packed(conn: Any, command: tuple[Any, ...]) -> list[bytes] | None:
    """What redis-py's hiredis packer sends, less its pass over every argument;
    None when redis-py packs in Python (no hiredis), to let it do so."""
    if not isinstance(getattr(conn, "_command_packer", None), HiredisRespSerializer):
        return None
    try:
        return [hiredis.pack_command(command)]
    except TypeError as exc:  # as redis-py reports an argument it cannot send
        raise DataError(str(exc)) from exc


def direct(client: Any) -> bool:
    """Whether ``client`` is a plain redis-py client (not a pipeline, not kombu's
    key-prefixing subclass), whose commands :func:`evalsha_direct` may send."""
    return type(client) is redis.Redis


class DirectScript(Script):
    """redis-py's ``Script`` (``register_script``) sent by :func:`evalsha_direct`
    on a plain client; on a pipeline (``WAIT`` after it) as redis-py does."""

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        target: Any = self.registered_client if client is None else client
        if not direct(target):
            return super().__call__(keys=keys, args=args, client=client)
        keys, args = list(keys or ()), list(args or ())
        try:
            return evalsha_direct(target, self.sha, keys, args)
        except NoScriptError:  # a new or restarted Redis: load it once, by its text
            self.sha = target.script_load(self.script)
            return evalsha_direct(target, self.sha, keys, args)


class ClientScript:
    """A script called by SHA on whichever client the caller holds (kombu's
    pooled ones), loaded on the first call that finds Redis without it."""

    def __init__(self, name: str) -> None:
        self.text = load(name)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()  # noqa: S324 (Redis's name)

    def __call__(self, *, keys: list[str], args: list[Any], client: Any) -> Any:
        send = evalsha_direct if direct(client) else _evalsha
        try:
            return send(client, self.sha, keys, args)
        except NoScriptError:  # a new or restarted Redis: load it once, by its text
            client.script_load(self.text)
            return send(client, self.sha, keys, args)


def _evalsha(client: Any, sha: str, keys: list[Any], args: list[Any]) -> Any:
    return client.evalsha(sha, len(keys), *keys, *args)
