"""Cancellation inside a worker process.

Each process keeps one subscription to ``<prefix>:cancel`` and a token per
job it runs. A message on the channel flips the job's token, so
``check_cancelled()`` is a plain attribute read with no I/O. The durable
``<prefix>:cancel:<id>`` flag covers everything the channel cannot: jobs that
had not started yet, and workers that were down when the cancel was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ..store.keys import Keys

log = logging.getLogger(__name__)


class CancelToken:
    """Set once a job is cancelled; callbacks run on the worker's loop."""

    __slots__ = ("_callbacks", "cancelled", "cancelled_at", "job_id")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.cancelled = False
        self.cancelled_at: float | None = None  # time.monotonic() when the cancel arrived
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.cancelled_at = time.monotonic()
        for callback in self._callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        if self.cancelled:
            callback()
        else:
            self._callbacks.append(callback)


class CancelWatcher:
    """Routes pushed cancels to the tokens of the jobs this process runs."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._tokens: dict[str, CancelToken] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    def register(self, job_id: str) -> CancelToken:
        token = self._tokens.get(job_id)
        if token is None:
            token = self._tokens[job_id] = CancelToken(job_id)
        return token

    def unregister(self, job_id: str) -> None:
        self._tokens.pop(job_id, None)

    def deliver(self, job_id: str) -> None:
        token = self._tokens.get(job_id)
        if token is not None:
            token.cancel()

    async def start(self, timeout: float = 10.0) -> None:
        """Subscribe and return once the subscription is live."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="skillq-cancel-listener")
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.cancel_channel)
                self._subscribed.set()
                backoff = 0.05
                # A cancel sent while the subscription was down is still in the
                # durable flags: re-check the jobs running here.
                await self._recheck()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        self.deliver(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cancel subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _recheck(self) -> None:
        job_ids = list(self._tokens)
        if not job_ids:
            return
        flags = await self._redis.exists(*[self._keys.cancel(j) for j in job_ids])
        if flags:
            for job_id in job_ids:
                if await self._redis.exists(self._keys.cancel(job_id)):
                    self.deliver(job_id)
