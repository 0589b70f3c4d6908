"""Leased deliveries: a job of any length runs once while its worker lives,
and a dead worker's job comes back within about one ``SKILLQ_LEASE``.

kombu's Redis transport keeps each message a worker took in ``unacked`` and
scores it in ``unacked_index`` by when it was taken; a sweep restores those
older than the visibility timeout. One number then bounds both how long a
job may run and how long a dead worker's job waits. skillq turns the score
into a lease:

- the worker's main process renews the score of every delivery it holds
  (running, prefetched, waiting for an eta) every third of the lease, in one
  script call whatever it holds (:class:`LeaseKeeper`);
- a sweep restores a delivery whose lease ended unrenewed, by Redis's clock
  and by its holder's lease length (workers with other settings share a
  broker safely), and never within a lease after renewals resumed from a
  pause of them all (a Redis restart, a partition of every worker), so live
  workers renew first (``lease_lapsed.lua``);
- an acknowledged delivery's entry and lease leave Redis with the next
  take's script call, or by the keeper's thread within 20 ms when nothing
  more is taken (:mod:`worker.runtime.acks`);
- every delivery gets a tag of its own when it is taken, so a late
  acknowledgement from a stale run never removes its successor's entry;
- the job record's delivery token fences the stale run itself: its events,
  artifact records and outcome are refused, and :class:`DeliveryGuard` stops
  its handler once it sees another delivery took the job over.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import Any

import redis

from ..core.settings import Settings
from ..store.connections import sync_redis
from ..store.keys import Keys
from ..store.scriptfiles import ClientScript
from .acks import ACK_RETRY, ACK_WAIT, PendingAcks
from .cancellation import CancelToken

log = logging.getLogger(__name__)

LAPSED_PER_SWEEP = 100


TAKE = ClientScript("lease_take")
RENEW = ClientScript("lease_renew")
LAPSED = ClientScript("lease_lapsed")
RELEASE = ClientScript("lease_release")


class LeaseKeeper:
    """Renews the leases of the deliveries this process's channels hold, and
    sends the acknowledgements no take carried.

    A thread of its own, not the consumer's event loop: a loop busy with a
    long put-back or a Redis retry must not let held jobs lapse, and a
    removal retried against an unreachable Redis must never hold the
    consumer. A process that is killed or frozen stops renewing, which is
    the point.
    """

    def __init__(self, settings: Settings, keys: Keys, unacked: str, unacked_index: str) -> None:
        self._settings = settings
        self._keys = keys
        self._unacked = unacked
        self._index = unacked_index
        self._holders: weakref.WeakSet[Any] = weakref.WeakSet()
        self._client: redis.Redis | None = None
        self._stop = threading.Event()
        self._failing = False
        self.acks = PendingAcks()
        self._thread = threading.Thread(target=self._keep, name="skillq-delivery-leases")
        self._thread.daemon = True
        self._thread.start()

    def hold(self, qos: Any) -> None:
        self._holders.add(qos)

    def held(self) -> list[str]:
        tags: set[str] = set()
        for qos in list(self._holders):
            for _ in range(3):  # the consumer thread may change it meanwhile
                try:
                    dirty = set(getattr(qos, "_dirty", ()))
                    tags.update(str(t) for t in list(qos._delivered) if t not in dirty)
                    break
                except RuntimeError:
                    continue
        return sorted(tags)

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = sync_redis(self._settings, self._settings.broker_url)
        return self._client

    def renew(self) -> list[str]:
        """Renew every held lease now; the tags that were no longer leased."""
        keys = [
            self._index,
            self._keys.leases,
            self._keys.lease_lengths,
            self._keys.lease_renewed,
            self._keys.lease_settled,
        ]
        gone = RENEW(
            keys=keys, args=[repr(self._settings.lease), *self.held()], client=self._redis()
        )
        return [str(tag) for tag in gone]

    def release_keys(self) -> list[str]:
        """KEYS of ``lease_release.lua`` (and of the acknowledgements a take carries)."""
        return [self._index, self._unacked, self._keys.leases, self._keys.lease_lengths]

    def send_acks(self) -> bool:
        """Send what waits in :attr:`acks` now; False when Redis could not take it."""
        while tags := self.acks.due():
            try:
                RELEASE(keys=self.release_keys(), args=tags, client=self._redis())
            except Exception as exc:  # kept for the next take or round
                if not self._failing:
                    log.warning(
                        "cannot remove %d acknowledged message(s) from Redis now (%s); they "
                        "go with the next delivery taken or the next try, or come back when "
                        "their leases lapse to a START that finds their jobs done",
                        len(self.acks),
                        exc,
                    )
                self._failing = True
                return False
            self.acks.done(tags)
            if self._failing:
                log.info("acknowledged messages reach Redis again")
                self._failing = False
        return True

    def _renew_round(self) -> None:
        try:
            gone = self.renew()
        except Exception as exc:  # the next round tries again; a lease outlasts two
            log.warning("cannot renew the leases of held jobs now: %s", exc)
            return
        if gone:
            log.warning(
                "the leases of %d held message(s) lapsed before they were renewed; "
                "another worker may run them (their runs here are fenced): %s",
                len(gone),
                ", ".join(gone),
            )

    def _keep(self) -> None:
        interval = self._settings.lease / 3
        renew_at = time.monotonic() + interval
        retry_at = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            waited = self.acks.waited()
            if waited is not None and waited >= ACK_WAIT and now >= retry_at:
                if not self.send_acks():
                    retry_at = now + ACK_RETRY
                continue
            if now >= renew_at:
                self._renew_round()
                renew_at = time.monotonic() + interval
                continue
            if waited is None:  # idle: woken by the first acknowledgement, or to renew
                self.acks.arrived.wait(renew_at - now)
            else:
                due = max(now + ACK_WAIT - waited, retry_at)
                self._stop.wait(max(0.0, min(renew_at, due) - now))

    def close(self) -> None:
        """Stop, sending what was acknowledged first (one try: the worker is leaving)."""
        self._stop.set()
        self.acks.arrived.set()
        self._thread.join(timeout=5)
        if len(self.acks):
            self.send_acks()


_keeper: LeaseKeeper | None = None
_keeper_lock = threading.Lock()


def keeper_for(settings: Settings, keys: Keys, unacked: str, unacked_index: str) -> LeaseKeeper:
    """This process's keeper, started by the first channel that consumes."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            _keeper = LeaseKeeper(settings, keys, unacked, unacked_index)
        return _keeper


def current_keeper() -> LeaseKeeper | None:
    """This process's keeper, if a channel has consumed."""
    return _keeper


def close_keeper() -> None:
    """At the worker's shutdown: acknowledgements waiting are sent, renewals stop."""
    global _keeper
    with _keeper_lock:
        keeper, _keeper = _keeper, None
    if keeper is not None:
        keeper.close()


def lapsed(client: Any, keys: Keys, unacked: str, lease: float) -> list[str]:
    """Tags of deliveries whose lease lapsed, to restore (at most a sweep's worth);
    each delivery's lease is its holder's, whatever this worker's (``lease``,
    which only tells how stale the last renewal may be before the sweep
    takes Redis to have stalled)."""
    found = LAPSED(
        keys=[unacked, keys.leases, keys.lease_lengths, keys.lease_settled, keys.lease_renewed],
        args=[LAPSED_PER_SWEEP, repr(lease)],
        client=client,
    )
    return [tag.decode() if isinstance(tag, bytes) else str(tag) for tag in found]


class DeliveryGuard:
    """In each pool process: stops a handler whose delivery another took over.

    Every third of a lease it reads the delivery token of each job the
    process runs (one pipelined round trip for all of them, none when idle);
    a token that changed means the job's lease lapsed and another worker
    started it, so the stale run is cancelled and its outcome is refused.
    """

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._runs: dict[str, tuple[str, CancelToken, asyncio.AbstractEventLoop]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(
        self, job_id: str, delivery: str, token: CancelToken, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Stop the run (cancel ``token`` on its ``loop``) if the job is taken over."""
        with self._lock:
            self._runs[job_id] = (delivery, token, loop)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._keep, name="skillq-delivery-guard", daemon=True
                )
                self._thread.start()

    def unwatch(self, job_id: str) -> None:
        with self._lock:
            self._runs.pop(job_id, None)

    def check(self) -> list[str]:
        """Stop the runs another delivery took over; their job ids."""
        with self._lock:
            runs = list(self._runs.items())
        if not runs:
            return []
        with self._client.pipeline(transaction=False) as pipe:
            for job_id, _ in runs:
                pipe.hget(self._keys.job(job_id), "delivery")
            current = pipe.execute()
        stopped = []
        for (job_id, (delivery, token, loop)), now in zip(runs, current, strict=True):
            if now is not None and now != delivery:
                log.warning(
                    "job %s: another worker took this delivery over (its lease of %g s "
                    "lapsed); stopping the run here, whose outcome is refused",
                    job_id,
                    self._settings.lease,
                )
                self.unwatch(job_id)
                loop.call_soon_threadsafe(token.cancel)
                stopped.append(job_id)
        return stopped

    def _keep(self) -> None:
        while not self._stop.wait(self._settings.lease / 3):
            try:
                self.check()
            except Exception as exc:  # the writes stay fenced meanwhile
                log.warning("cannot check the deliveries of running jobs now: %s", exc)

    def close(self) -> None:
        self._stop.set()


def running_delivery_tags() -> set[str]:
    """Delivery tags of the jobs this worker process has started."""
    from celery.worker import state as worker_state

    tags: set[str] = set()
    for request in list(worker_state.active_requests):
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag is not None:
            tags.add(str(tag))
    return tags
