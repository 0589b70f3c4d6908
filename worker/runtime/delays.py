"""Delays of any length, held in Redis rather than in a worker's memory.

Celery keeps a message whose eta is ahead in the worker that took it,
unacknowledged, until the eta: memory grows with every delayed job, and a
worker restart hands them all round again. skillq's transport parks a
message whose eta is more than :data:`PARK_AFTER` ahead in a sorted set of
the broker's Redis (``delay_park.lua``), whatever sent it (``submit``, a
plain producer's ``countdown``, a retry's backoff, a limit's wait). Every
worker's :class:`DuePromoter` queues what has come due (``delay_due.lua``,
by Redis's clock; any number of workers may run it at once), so a job
starts within a fraction of a second of its eta while any worker is up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime
from typing import Any

from ..core.settings import Settings
from ..store.connections import sync_redis
from ..store.keys import Keys
from ..store.scriptfiles import ClientScript

log = logging.getLogger(__name__)

PARK_AFTER = 1.0  # seconds: a nearer eta is left to Celery's timer (its lease is renewed)
IDLE_LOOK = 5.0  # seconds between looks when nothing is announced (a missed announcement)
DUE_PER_CALL = 500

WAKE_HEADER = "skillq_wake"  # a parked message client.respond may bring forward

PARK = ClientScript("delay_park")
DUE = ClientScript("delay_due")


def eta_seconds(message: dict[str, Any]) -> float | None:
    """The message's eta as Unix seconds (the envelope check vouched for its form)."""
    value = (message.get("headers") or {}).get("eta")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def park(
    client: Any, keys: Keys, message: dict[str, Any], eta: float, queue_list: str, item: bytes
) -> bool:
    """Park a message until ``eta``; False when it is to be delivered now instead.

    One that names a job to wake (a job waiting for input) is kept under that
    job's id, so ``client.respond`` can bring it forward; once the job was
    answered, the message is delivered at once with its eta cleared.
    """
    headers = message.get("headers") or {}
    wake = str(headers.get(WAKE_HEADER) or "")
    tag = f"wake:{wake}" if wake else str(message["properties"]["delivery_tag"])
    parked = PARK(
        keys=[keys.delayed, keys.delayed_messages, keys.wake(wake) if wake else ""],
        args=[tag, repr(eta), queue_list, item, keys.due_channel],
        client=client,
    )
    if not int(parked):
        headers["eta"] = None  # answered: it runs now, not at its timeout
        return False
    return True


class DuePromoter:
    """Queues the waiting messages that have come due, from this worker.

    It sleeps until the first message is due, or until a park or an answer
    announces an earlier one on ``<prefix>:due`` (a blocking read of its
    subscription: an idle worker sends Redis nothing meanwhile), and looks
    every :data:`IDLE_LOOK` seconds anyway, in case an announcement was
    missed while its connection was being remade. Any number of workers may
    promote at once; each message is queued once.
    """

    def __init__(self, settings: Settings, keys: Keys) -> None:
        self._settings = settings
        self._keys = keys
        self._client = sync_redis(settings, settings.broker_url)
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._keep, name="skillq-due", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A message was parked here: look again (its park announced it too)."""
        self._wake.set()

    def promote(self) -> tuple[int, float | None]:
        """Queue what is due; how many, and seconds until the next (None: nothing waits)."""
        queued, wait = DUE(
            keys=[self._keys.delayed, self._keys.delayed_messages],
            args=[DUE_PER_CALL],
            client=self._client,
        )
        seconds = float(wait)
        return int(queued), None if seconds < 0 else seconds

    def _keep(self) -> None:
        listening: Any = None
        while not self._stop:
            try:
                if listening is None:
                    listening = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    listening.subscribe(self._keys.due_channel)
                self._wake.clear()
                queued, wait = self.promote()
                if queued >= DUE_PER_CALL:
                    continue  # more are due: go on at once
                pause = IDLE_LOOK if wait is None else min(IDLE_LOOK, max(0.01, wait))
                if not self._wake.is_set():
                    listening.get_message(timeout=pause)  # an announcement, or the time
            except Exception as exc:  # the messages wait in Redis meanwhile
                log.warning("cannot queue delayed jobs that are due now: %s", exc)
                if listening is not None:
                    with contextlib.suppress(Exception):
                        listening.close()
                listening = None
                self._wake.wait(1.0)
        if listening is not None:
            with contextlib.suppress(Exception):
                listening.close()

    def close(self) -> None:
        self._stop = True
        self._wake.set()


_promoter: DuePromoter | None = None
_promoter_lock = threading.Lock()


def promoter_for(settings: Settings, keys: Keys) -> DuePromoter:
    """This process's promoter, started by the first channel that consumes."""
    global _promoter
    with _promoter_lock:
        if _promoter is None:
            _promoter = DuePromoter(settings, keys)
        return _promoter
