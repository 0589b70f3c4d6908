"""Every follower of a process on one pub/sub connection.

A :class:`~worker.client.subscription.Subscription` holds a Redis
connection of its own, which is right for one caller and wrong for a
server: a few hundred open event streams would take every connection of
the pool (and the server with them), and each idle connection buffers what
is published to it for as long as its reader does not read. A
:class:`Fanout` subscribes once per channel on a single connection, reads
it continuously in one task, and hands each message to the followers of
its channel through bounded queues. A follower that falls more than
``buffer`` messages behind loses its queue and is told it missed messages,
exactly as after a reconnect: it catches up from the job's stream, so the
server's memory never grows with a reader that does not read.

A follower has the interface of a ``Subscription`` (``open``, ``get``,
``close``), so :meth:`AsyncSkillClient.events` takes either.

The fan-out has a Redis pool of its own (:data:`CONNECTIONS`, on which a
follower's reads wait for a free connection): its subscription and every
read of its followers (the job's record, the replay from its stream) go
there, so however many streams are open, and however slow Redis is, they
never take the connections the server's requests use, nor fail for want of
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.settings import Settings
from ..store.connections import async_redis
from .subscription import IDLE, MESSAGE, RECONNECTED, SUBSCRIBE_TIMEOUT, Deadline, Envelope

log = logging.getLogger(__name__)

READ_TIMEOUT = 1.0
CONNECTIONS = 32  # the fan-out's own: one subscribed, the rest for its followers' reads


class Follower:
    """One reader of one channel of a :class:`Fanout`."""

    CATCH_UP_AFTER = 5.0  # as Subscription: a long silence is checked against the stream

    def __init__(self, fanout: Fanout, channel: str, deadline: Deadline) -> None:
        self.fanout = fanout
        self.channel = channel
        self._deadline = deadline
        self._queue: asyncio.Queue[Envelope | None] = asyncio.Queue()
        self._missed = False
        self._heard_at = time.monotonic()
        self._open = False

    def deliver(self, envelope: Envelope | None) -> None:
        """From the reader task: a message, or None for "you may have missed some"."""
        if envelope is None or self._queue.qsize() >= self.fanout.buffer:
            # Too far behind (or a reconnect): drop what is queued; the stream has it.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._missed = True
            self._queue.put_nowait(None)  # wakes a get() that is waiting
            return
        self._queue.put_nowait(envelope)

    async def open(self) -> None:
        await self.fanout.add(self, self._deadline)
        self._open = True
        self._heard_at = time.monotonic()

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.fanout.remove(self)

    async def get(self, timeout: float) -> tuple[str, Envelope | None]:
        try:
            envelope = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            envelope, queue_item = None, False
        else:
            queue_item = True
        now = time.monotonic()
        if self._missed:
            self._missed = False
            self._heard_at = now
            return RECONNECTED, None
        if not queue_item or envelope is None:
            if now - self._heard_at >= self.CATCH_UP_AFTER:
                self._heard_at = now
                return RECONNECTED, None
            return IDLE, None
        self._heard_at = now
        return MESSAGE, envelope

    async def __aenter__(self) -> Follower:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Fanout:
    """One pub/sub connection and one reader task for all of a process's followers.

    Create it inside the loop that uses it; :meth:`aclose` ends the task and
    closes its connections (``redis``, which the followers read on).
    """

    def __init__(self, settings: Settings, *, buffer: int = 1000) -> None:
        self.redis: Redis = async_redis(settings, pool_size=CONNECTIONS)
        self.buffer = buffer
        self._followers: dict[str, set[Follower]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def follower(self, channel: str, deadline: Deadline) -> Follower:
        return Follower(self, channel, deadline)

    @property
    def channels(self) -> int:
        return len(self._followers)

    async def add(self, follower: Follower, deadline: Deadline) -> None:
        """Register the follower; return once Redis confirmed its channel's SUBSCRIBE,
        so a read of the record after this cannot miss an event published between."""
        channel = follower.channel
        async with self._lock:
            self._start()
            self._followers.setdefault(channel, set()).add(follower)
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = asyncio.Event()
                # On failure the reader reconnects and subscribes every channel again.
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                    await self._pubsub.subscribe(channel)
            self._wake.set()
        left = deadline.remaining()
        ours = left is not None and left < SUBSCRIBE_TIMEOUT  # the caller's wait ends first
        limit = max(0.0, left) if left is not None and ours else SUBSCRIBE_TIMEOUT
        try:
            await asyncio.wait_for(confirmed.wait(), limit)
        except TimeoutError:
            await self.remove(follower)
            if ours:
                raise TimeoutError(
                    f"timed out after {deadline.timeout} s waiting for {channel}"
                ) from None
            raise RedisTimeoutError(f"no confirmation of SUBSCRIBE {channel}") from None

    async def remove(self, follower: Follower) -> None:
        channel = follower.channel
        async with self._lock:
            followers = self._followers.get(channel)
            if followers is None:
                return
            followers.discard(follower)
            if followers:
                return
            del self._followers[channel]
            self._confirmed.pop(channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                    await self._pubsub.unsubscribe(channel)

    def _start(self) -> None:
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        connection: Any = None
        while True:
            try:
                if self._pubsub.connection is not connection and self._pubsub.connection:
                    connection = self._pubsub.connection
                    connection.register_connect_callback(self._on_reconnect)
                if not self._followers or self._pubsub.connection is None:
                    self._wake.clear()
                    await self._wake.wait()  # add() wakes it after its SUBSCRIBE
                    continue
                message = await self._pubsub.get_message(timeout=READ_TIMEOUT)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("event fan-out lost Redis (%s); subscribing again", exc)
                await self._resubscribe()
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the reader must outlive any one bad message
                log.exception("event fan-out: unexpected error; going on")
                await asyncio.sleep(READ_TIMEOUT / 10)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message.get("type"), message.get("channel")
        if not isinstance(channel, str):
            return
        if kind == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
        elif kind == "message":
            try:
                envelope = json.loads(message["data"])
            except ValueError:
                return
            for follower in list(self._followers.get(channel, ())):
                follower.deliver(envelope)

    def _on_reconnect(self, connection: Any) -> None:
        """redis-py reconnected (and resubscribed) by itself: anything published
        meanwhile is gone, so every follower catches up."""
        for followers in self._followers.values():
            for follower in followers:
                follower.deliver(None)

    async def _resubscribe(self) -> None:
        backoff = 0.05
        while True:
            async with self._lock:
                old, self._pubsub = self._pubsub, self.redis.pubsub()
                with contextlib.suppress(Exception):
                    await old.aclose()
                channels = list(self._followers)
                try:
                    if channels:
                        await self._pubsub.subscribe(*channels)
                    self._confirmed = {
                        channel: self._confirmed.get(channel) or asyncio.Event()
                        for channel in channels
                    }
                    for confirmed in self._confirmed.values():
                        confirmed.set()  # followers waiting in add() may read the record now
                    self._on_reconnect(None)
                    return
                except (RedisConnectionError, RedisTimeoutError):
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        with contextlib.suppress(Exception):
            await self.redis.aclose()
