"""Following a pub/sub channel through Redis restarts, with an overall deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Envelope = dict[str, Any]

MESSAGE, IDLE, RECONNECTED = "message", "idle", "reconnected"
RECONNECT_WINDOW = 60.0
SUBSCRIBE_TIMEOUT = 10.0


class Deadline:
    """An optional overall time limit for a wait."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def wait(self, what: str, step: float = 1.0) -> float:
        """How long the next blocking read may take, or TimeoutError if none is left."""
        left = self.remaining()
        if left is None:
            return step
        if left <= 0:
            raise TimeoutError(f"timed out after {self.timeout} s waiting for {what}")
        return min(step, left)


class Subscription:
    """One pub/sub channel that comes back by itself after Redis restarts.

    ``get`` returns ``(MESSAGE, envelope)``, ``(IDLE, None)`` when nothing
    arrived in time, or ``(RECONNECTED, None)`` when the connection may have
    missed messages; the caller then catches up from the stream or the record.

    redis-py reconnects and resubscribes a pub/sub connection by itself,
    without raising (after ``CLIENT KILL``, a proxy's idle cut, the server's
    output-buffer limit, a blip): messages published meanwhile are silently
    gone. A connect callback on the connection reports every such reconnect,
    and as a last resort a wait that has heard nothing for
    ``CATCH_UP_AFTER`` seconds is reported as a possible miss too, so no
    caller ever trusts pub/sub alone for a job's last event.
    """

    CATCH_UP_AFTER = 5.0

    def __init__(self, redis: Redis, channel: str, deadline: Deadline) -> None:
        self._redis = redis
        self._channel = channel
        self._deadline = deadline
        self._pubsub: Any = None
        self._connection: Any = None
        self._missed = False
        self._heard_at = time.monotonic()

    async def open(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        # SUBSCRIBE and the caller's next read of the record travel on two
        # connections, and Redis may serve the read first: an event published
        # between the two would be missed. Wait until the subscription holds.
        until = time.monotonic() + SUBSCRIBE_TIMEOUT
        while True:
            left = until - time.monotonic()
            if left <= 0:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise RedisTimeoutError(f"no confirmation of SUBSCRIBE {self._channel}")
            message = await pubsub.get_message(timeout=min(left, self._deadline.wait("Redis")))
            if message is not None and message["type"] == "subscribe":
                break
        self._pubsub = pubsub
        self._connection = pubsub.connection
        if self._connection is not None:
            self._connection.register_connect_callback(self._on_reconnect)
        self._heard_at = time.monotonic()

    def _on_reconnect(self, connection: Any) -> None:
        self._missed = True

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.deregister_connect_callback(self._on_reconnect)
            self._connection = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    async def get(self, timeout: float) -> tuple[str, Envelope | None]:
        try:
            message = await self._pubsub.get_message(timeout=timeout)
        except (RedisConnectionError, RedisTimeoutError):
            await self._reconnect()
            return RECONNECTED, None
        now = time.monotonic()
        if self._missed:
            self._missed = False
            self._heard_at = now
            return RECONNECTED, None
        if message is not None and message["type"] != "message":
            message = None  # (un)subscribe confirmations and pongs
        if message is None:
            if now - self._heard_at >= self.CATCH_UP_AFTER:
                self._heard_at = now
                return RECONNECTED, None
            return IDLE, None
        self._heard_at = now
        return MESSAGE, json.loads(message["data"])

    async def _reconnect(self) -> None:
        await self.close()
        started, backoff = time.monotonic(), 0.05
        while True:
            try:
                await self.open()
                return
            except (RedisConnectionError, RedisTimeoutError):
                left = self._deadline.remaining()
                if time.monotonic() - started > RECONNECT_WINDOW or (
                    left is not None and left <= 0
                ):
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def __aenter__(self) -> Subscription:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
