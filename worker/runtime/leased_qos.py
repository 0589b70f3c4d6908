"""The transport's QoS: leased deliveries, acknowledgements that ride along,
and unacknowledged messages when a connection is lost.

A job's message used to cost the worker's main process two script calls:
the lease when it was taken and the release when the job was acknowledged.
The release now waits in :class:`PendingAcks` and goes with the next take's
call (``lease_take.lua`` removes what was acknowledged, then leases the new
delivery); a worker with nothing more to take sends it by itself within
``ACK_WAIT``. Nothing depends on the removal being immediate: the job's
outcome is stored before its message is acknowledged, the local prefetch
count frees at once, and an entry left by a worker that died in between
comes back when its lease lapses, to a ``START`` that finds the job done.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual.base import QoS as VirtualQoS
from redis.exceptions import RedisError

from ..core.settings import Settings
from ..store.keys import Keys
from ..store.outage import outlast
from ..wire.celery_app import OPTIONS_KEY, transport_settings
from . import leases

log = logging.getLogger(__name__)

ACK_WAIT = 0.02  # seconds an acknowledgement waits for a take to ride on
ACKS_PER_CALL = 256  # tags one script call removes, at most
ACK_RETRY = 1.0  # seconds between flushes while Redis cannot be reached


class PendingAcks:
    """Acknowledged delivery tags whose removal from Redis has not been sent.

    One per set of keys in a process, not per channel: a channel that lost
    its connection takes nothing more, and the channel after it carries its
    acknowledgements. Tags are added on the consumer's event loop (Celery
    acknowledges there); from any other thread, or with no loop, a tag is
    released at once, as before. A timer flushes what no take carried within
    ``ACK_WAIT``; the consumer may drop its timers when it reconnects, so a
    timer unheard of for ``ACK_RETRY`` is armed again, and the lease keeper's
    thread flushes anything older as a last resort. A flush that cannot
    reach Redis keeps its tags for the next take or flush.
    """

    def __init__(self) -> None:
        self._tags: list[str] = []
        self._since: float | None = None  # when the oldest pending tag came
        self._armed: float | None = None  # when the timer was set
        self._release: Callable[[list[str]], None] | None = None
        self._lock = threading.Lock()

    def add(self, tag: str, release: Callable[[list[str]], None]) -> None:
        hub = _hub if threading.current_thread() is threading.main_thread() else None
        if hub is None:
            release([tag])
            return
        now = time.monotonic()
        with self._lock:
            self._tags.append(tag)
            self._release = release  # the newest channel's connection
            if self._since is None:
                self._since = now
            arm = self._armed is None or now - self._armed > ACK_RETRY
            if arm:
                self._armed = now
        if arm:
            hub.call_later(ACK_WAIT, self._on_timer)

    def due(self) -> list[str]:
        """The tags a take may carry (removed from here by :meth:`done`)."""
        with self._lock:
            return self._tags[:ACKS_PER_CALL]

    def done(self, tags: list[str]) -> None:
        if tags:
            with self._lock:
                sent = set(tags)
                self._tags = [tag for tag in self._tags if tag not in sent]
                if not self._tags:
                    self._since = None

    def flush(self, older_than: float = 0.0) -> None:
        """Send the pending tags now: on a timer, as the channel closes, or (from
        the lease keeper) when the oldest has waited ``older_than`` seconds."""
        with self._lock:
            since, release = self._since, self._release
        if since is None or release is None or time.monotonic() - since < older_than:
            return
        while tags := self.due():
            try:
                release(tags)
            except (OSError, RedisError) as exc:
                log.warning(
                    "cannot remove %d acknowledged message(s) from Redis now (%s); they "
                    "go with the next delivery taken, or come back to a START that finds "
                    "their jobs done",
                    len(tags),
                    exc,
                )
                return
            self.done(tags)

    def _on_timer(self) -> None:
        self.flush()
        with self._lock:
            again = bool(self._tags)
            self._armed = time.monotonic() if again else None
        hub = _hub
        if again and hub is not None:
            hub.call_later(ACK_RETRY, self._on_timer)


# The consumer's event loop, as the transport was last registered with it.
# kombu's get_event_loop() is no guide: closing a hub on a reconnect clears
# it while Celery goes on with the same hub.
_hub: Any = None


def use_hub(hub: Any) -> None:
    global _hub
    _hub = hub


_pending: dict[tuple[str, ...], PendingAcks] = {}
_pending_lock = threading.Lock()


def pending_for(keys: tuple[str, ...]) -> PendingAcks:
    with _pending_lock:
        found = _pending.get(keys)
        if found is None:
            found = _pending[keys] = PendingAcks()
        return found


@dataclass(frozen=True)
class TransportConfig:
    settings: Settings
    keys: Keys
    tasks: frozenset[str]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TransportConfig:
        given = options.get(OPTIONS_KEY) or {}
        settings = transport_settings(given)
        return cls(settings, Keys(settings.key_prefix), frozenset(given.get("tasks", ())))


virtual_qos_append = VirtualQoS.append


class QoS(kombu_redis.QoS):
    """Leased deliveries (:mod:`worker.runtime.leases`), and unacknowledged
    messages when a connection is lost.

    kombu pushes every unacknowledged message back onto its queue when the
    channel closes, including those of jobs still running: after a Redis
    blip the same job would then run twice at once. skillq restores only
    messages whose jobs have not started; a running job acknowledges its
    message when it finishes (through a fresh connection, see
    ``Channel._connparams``), and if its worker dies instead the message
    comes back when its lease lapses. A restore that cannot reach Redis is
    left to the leases too, instead of stopping the worker.
    """

    def append(self, message: Any, delivery_tag: Any) -> None:
        """kombu's unacked entry, leased from now by Redis's clock (one round trip,
        as kombu's own pipeline), with the acknowledgements made since."""
        delivery = message.delivery_info
        stored = json.dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
        keys = [self.unacked_key, self.unacked_index_key, config.keys.leases]
        acks = self._acks

        def take() -> None:
            acked = acks.due()
            with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
                leases.TAKE(
                    keys=[*keys, config.keys.lease_lengths],
                    args=[delivery_tag, stored, repr(config.settings.lease), *acked],
                    client=client,
                )
            acks.done(acked)

        # The message is already off its list (BRPOP) and only here: a Redis
        # that went away (a failover, a restart) must not lose it, so its
        # unacked entry is retried until Redis (the new primary) takes it.
        outlast(config.settings.redis_outage_budget, f"leasing delivery {delivery_tag}", take)
        virtual_qos_append(self, message, delivery_tag)

    @property
    def _acks(self) -> PendingAcks:
        pending: PendingAcks | None = self.__dict__.get("_skillq_acks")
        if pending is None:
            config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
            keys = (self.unacked_key, self.unacked_index_key, config.keys.leases)
            pending = self.__dict__["_skillq_acks"] = pending_for(keys)
        return pending

    def flush_acks(self, older_than: float = 0.0) -> None:
        """The lease keeper's last resort (see :class:`PendingAcks`)."""
        self._acks.flush(older_than)

    def ack(self, delivery_tag: Any) -> None:
        """kombu's removals and the lease's: on the next take's script call, or
        within ``ACK_WAIT`` seconds by a call of their own (see :class:`PendingAcks`)."""
        VirtualQoS.ack(self, delivery_tag)
        self._acks.add(str(delivery_tag), self._release)

    def _release(self, tags: list[str]) -> None:
        config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
        keys = [self.unacked_index_key, self.unacked_key, config.keys.leases]
        with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            leases.RELEASE(keys=[*keys, config.keys.lease_lengths], args=tags, client=client)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        """kombu's removal (on acknowledge, reject and restore), and the lease."""
        config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
        pipe = super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[misc]
        return pipe.zrem(config.keys.leases, delivery_tag).hdel(
            config.keys.lease_lengths, delivery_tag
        )

    def restore_visible(self, start: int = 0, num: int | None = 10, interval: int = 10) -> None:
        """Restore the deliveries whose lease lapsed, whoever held them.

        Any number of workers may sweep at once: kombu's restore is a
        transaction on the unacked hash, so a message is put back once.
        """
        config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
        with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            tags = leases.lapsed(client, config.keys, self.unacked_key)
            for tag in tags:
                self.restore_by_tag(tag, client)
        if tags:
            log.warning(
                "restored %d job message(s) whose lease lapsed (their worker died, froze or "
                "was cut off): %s",
                len(tags),
                ", ".join(tags),
            )

    def restore_unacked(self, client: Any = None) -> None:
        self._acks.flush()  # the channel closes: what was acknowledged goes first
        delivered: Any = self._delivered
        running = leases.running_delivery_tags()
        try:
            with self.channel.conn_or_acquire(client) as conn:  # type: ignore[attr-defined]
                for tag in list(delivered):
                    if str(tag) not in running:
                        self.restore_by_tag(tag, client=conn)
        except (AttributeError, OSError, RedisError) as exc:
            log.warning(
                "cannot restore %d unacknowledged message(s) now (%s); they stay in "
                "Redis and come back when their leases lapse",
                len(delivered),
                exc,
            )
        delivered.clear()
