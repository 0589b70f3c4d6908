"""Waiting for a job to finish in the caller's own thread, on one connection.

``SkillClient.result`` of an unfinished job used to hop to the client's loop
thread and open a pub/sub connection for that one job: two thread switches, an
asyncio client and a SUBSCRIBE/UNSUBSCRIBE pair with a fresh connection for
every job, which cost more client CPU than Celery's ``join_native`` spends on
the same wait. Here a blocking pub/sub connection lives as long as the client
and waits in the caller's thread, as Celery's own result consumer does.

The guarantees of :class:`~worker.client.subscription.Subscription` hold:
redis-py reconnects and resubscribes a pub/sub connection by itself, so every
reconnect (seen through a connect callback) and every silence longer than
``CATCH_UP_AFTER`` makes the wait re-read the job's record, never trusting
pub/sub alone for the last event.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..store.job_status import JobStatus
from ..store.keys import Keys
from .subscription import RECONNECT_WINDOW, SUBSCRIBE_TIMEOUT, Deadline, Subscription

TERMINAL_MARK = '"kind":"status"'


class FinishWaiter:
    """One blocking pub/sub connection that waits for one job at a time.

    ``wait`` returns None when another thread is already waiting on it; that
    caller then takes the client's concurrent (loop-thread) path, so threads
    never queue behind each other's long jobs.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        catch_up_after: float = Subscription.CATCH_UP_AFTER,
    ) -> None:
        """``client`` must decode responses (channels and messages are str)."""
        self._redis = client
        self._catch_up_after = catch_up_after
        self._keys = keys
        self._lock = threading.Lock()
        self._pubsub: Any = None
        self._watching = False
        self._reconnected = False

    def wait(
        self, job_id: str, status_of: Callable[[str], JobStatus], deadline: Deadline
    ) -> JobStatus | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._wait(job_id, status_of, deadline)
        finally:
            self._lock.release()

    def _wait(
        self, job_id: str, status_of: Callable[[str], JobStatus], deadline: Deadline
    ) -> JobStatus:
        channel = self._keys.events(job_id)
        try:
            pubsub = self._resubscribe(channel, deadline)
            status = status_of(job_id)
            heard_at = time.monotonic()
            while not status.finished:
                try:
                    message = pubsub.get_message(timeout=deadline.wait(f"job {job_id} to finish"))
                except (RedisConnectionError, RedisTimeoutError):
                    self._drop()
                    pubsub = self._resubscribe(channel, deadline)
                    status = status_of(job_id)
                    continue
                now = time.monotonic()
                if self._reconnected:
                    self._reconnected = False
                    heard_at = now
                    status = status_of(job_id)
                elif message is None:
                    if now - heard_at >= self._catch_up_after:
                        heard_at = now
                        status = status_of(job_id)
                elif message["type"] == "message" and message["channel"] == channel:
                    heard_at = now
                    if TERMINAL_MARK in message["data"]:
                        status = status_of(job_id)
            return status
        finally:
            self._leave(channel)

    def _subscribe(self, channel: str, deadline: Deadline) -> Any:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call]
        pubsub = self._pubsub
        pubsub.subscribe(channel)
        if not self._watching:
            # Registered once connected, so only reconnects call it.
            pubsub.connection.register_connect_callback(self._on_reconnect)
            self._watching = True
        # The record is read next on another connection, which Redis may serve
        # first: wait until the subscription holds, or an event in between is lost.
        until = time.monotonic() + SUBSCRIBE_TIMEOUT
        while True:
            left = until - time.monotonic()
            if left <= 0:
                raise RedisTimeoutError(f"no confirmation of SUBSCRIBE {channel}")
            message = pubsub.get_message(timeout=min(left, deadline.wait("Redis")))
            if message and message["type"] == "subscribe" and message["channel"] == channel:
                return pubsub

    def _resubscribe(self, channel: str, deadline: Deadline) -> Any:
        started, backoff = time.monotonic(), 0.05
        while True:
            try:
                return self._subscribe(channel, deadline)
            except (RedisConnectionError, RedisTimeoutError):
                self._drop()
                left = deadline.remaining()
                if time.monotonic() - started > RECONNECT_WINDOW or (
                    left is not None and left <= 0
                ):
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _on_reconnect(self, connection: Any) -> None:
        self._reconnected = True

    def _leave(self, channel: str) -> None:
        if self._pubsub is None:
            return
        try:
            self._pubsub.unsubscribe(channel)
        except Exception:  # a broken connection is rebuilt by the next wait
            self._drop()

    def _drop(self) -> None:
        if self._pubsub is not None:
            if self._watching:
                with contextlib.suppress(Exception):
                    self._pubsub.connection.deregister_connect_callback(self._on_reconnect)
            with contextlib.suppress(Exception):
                self._pubsub.close()
            self._pubsub = None
            self._watching = False

    def close(self) -> None:
        with self._lock:
            self._drop()
