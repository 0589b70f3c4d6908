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
