"""``ctx.discover`` on a worker: live agents from the registry.

One read of the registry (O(live workers), never a keyspace scan) per
``find``; agents whose workers stopped drop out within three heartbeats.
"""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from ..interface.capabilities import AgentInfo
from ..store.agents import all_agents, matching
from ..store.keys import Keys
from ..store.registry import read_workers_async


class RegistryDiscovery:
    """Finds the agents of this deployment (``url`` = ``skillq://<agent>``)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def agents(self) -> dict[str, AgentInfo]:
        """Live agents of the deployment, and the remote A2A agents registered with
        ``skillq agents add`` (``url`` their http(s) address)."""
        remote = cast(dict[str, str], await self._redis.hgetall(self._keys.remote_agents()))
        return all_agents(await read_workers_async(self._redis, self._keys), remote)

    async def find(
        self,
        *,
        tag: str | None = None,
        capability: str | None = None,
        skill: str | None = None,
    ) -> list[AgentInfo]:
        found = await self.agents()
        return matching(found.values(), tag=tag, capability=capability, skill=skill)
