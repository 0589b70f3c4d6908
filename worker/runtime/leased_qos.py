"""The transport's QoS: leased deliveries, acknowledgements that ride along
(:mod:`worker.runtime.acks`), and unacknowledged messages when a connection
is lost. The channel that uses it is in :mod:`worker.runtime.transport`."""

from __future__ import annotations

import json
import logging
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
        """kombu's unacked entry, leased from now by Redis's clock, with the
        acknowledgements made since (one round trip, as kombu's own pipeline)."""
        delivery = message.delivery_info
        stored = json.dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
        keys = [self.unacked_key, self.unacked_index_key, config.keys.leases]
        keeper = leases.current_keeper()

        def take() -> None:
            acked = keeper.acks.due() if keeper is not None else []
            with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
                leases.TAKE(
                    keys=[*keys, config.keys.lease_lengths],
                    args=[delivery_tag, stored, repr(config.settings.lease), *acked],
                    client=client,
                )
            if keeper is not None:
                keeper.acks.done(acked)

        # The message is already off its list (BRPOP) and only here: a Redis
        # that went away (a failover, a restart) must not lose it, so its
        # unacked entry is retried until Redis (the new primary) takes it.
        outlast(config.settings.redis_outage_budget, f"leasing delivery {delivery_tag}", take)
        virtual_qos_append(self, message, delivery_tag)

    def ack(self, delivery_tag: Any) -> None:
        """kombu's removals and the lease's: with the next take's script call, or
        by the lease keeper within ``acks.ACK_WAIT`` (:mod:`worker.runtime.acks`)."""
        VirtualQoS.ack(self, delivery_tag)
        keeper = leases.current_keeper()
        if keeper is not None:
            keeper.acks.add(str(delivery_tag))
            return
        config: TransportConfig = self.channel.skillq  # type: ignore[attr-defined]
        keys = [self.unacked_index_key, self.unacked_key, config.keys.leases]
        with self.channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            leases.RELEASE(
                keys=[*keys, config.keys.lease_lengths], args=[delivery_tag], client=client
            )

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
            tags = leases.lapsed(client, config.keys, self.unacked_key, config.settings.lease)
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
