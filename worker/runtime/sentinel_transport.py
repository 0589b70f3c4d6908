"""skillq's transport on Redis behind Sentinel (``sentinel://`` broker URLs).

kombu's ``SentinelChannel`` finds the primary through the sentinels and
reconnects to the new one after a failover; skillq's :class:`Channel` adds
leased deliveries, guarded consumption and priorities. The MRO puts skillq's
overrides first and kombu's Sentinel pool under them, so both hold.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

from ..store.sentinels import FollowingConnection
from .transport import Channel, Transport


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """skillq's channel on a connection pool kombu's Sentinel support manages,
    whose connections ask the sentinels on every reconnect."""

    connection_class = FollowingConnection


class SentinelTransport(Transport):
    default_port = 26379
    Channel = SentinelChannel
