"""skillq's transport on Redis behind Sentinel (``sentinel://`` broker URLs).

kombu's ``SentinelChannel`` finds the primary through the sentinels and
reconnects to the new one after a failover; skillq's :class:`Channel` adds
leased deliveries, guarded consumption and priorities. The MRO puts skillq's
overrides first and kombu's Sentinel pool under them, so both hold.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

from ..store.sentinels import FollowingConnection
from ..wire.celery_app import SENTINEL_TRANSPORT, TRANSPORT
from .transport import Channel, Transport


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """skillq's channel on a connection pool kombu's Sentinel support manages,
    whose connections ask the sentinels on every reconnect."""

    connection_class = FollowingConnection

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        """kombu's pool through the sentinels, kept for after the connection is gone.

        Celery acknowledges a job that ran across a reconnect on the channel
        it came from; kombu has dropped that channel's pools and would build
        one again from ``self.connection.client``, which is None by then: an
        AttributeError that stopped the worker. The kept pool follows the
        primary by itself (its connections ask the sentinels)."""
        kept: dict[bool, Any] = self.__dict__.setdefault("_skillq_sentinel_pools", {})
        gone = self.connection is None or self.connection.client is None
        if gone and asynchronous in kept:
            return kept[asynchronous]
        pool = super()._sentinel_managed_pool(asynchronous)  # type: ignore[misc]
        kept[asynchronous] = pool
        return pool


class SentinelTransport(Transport):
    default_port = 26379
    Channel = SentinelChannel


# The URL schemes kombu resolves to a transport class, as skillq's consumers must.
SKILLQ_TRANSPORTS = {
    "redis": TRANSPORT,
    "rediss": TRANSPORT,
    "sentinel": SENTINEL_TRANSPORT,
}


def keep_transport_across_reconnects() -> None:
    """In a worker process: every broker URL resolves to skillq's transport.

    A broker URL of several sentinels (``sentinel://a;sentinel://b``) is, to
    kombu, a list of failover alternates. After a lost connection Celery's
    consumer switches to the next one, and kombu's ``Connection.switch``
    takes the transport from that URL's scheme, dropping the class the
    worker was configured with: from then on the worker consumed with
    kombu's plain transport, without leases, parking or the envelope check.
    Jobs that waited for input were then held unleased in kombu's unacked
    hash for ever once answered. Pointing the schemes at skillq's classes
    keeps every reconnect on them; publishing is unchanged by it.
    """
    from kombu import transport

    transport.TRANSPORT_ALIASES.update(SKILLQ_TRANSPORTS)
    resolved = getattr(transport, "_transport_cache", None)  # kombu's memo of the aliases
    if isinstance(resolved, dict):
        for scheme in SKILLQ_TRANSPORTS:
            resolved.pop(scheme, None)
