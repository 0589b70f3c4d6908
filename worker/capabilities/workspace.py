"""``ctx.workspace`` on a worker: each job's grant verified before it runs.

The grant is checked when the job's context is built, so a forged, expired,
revoked or foreign grant fails the job before the handler starts, with
``invalid_grant`` and the reason.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ..interface.capabilities import JobScope, Unavailable, WorkspaceClient
from ..store.keys import Keys
from ..workspace.grants import Grant, GrantSigner
from ..workspace.revocations import check_not_revoked
from ..workspace.workspace_client import GrantedWorkspace
from ..workspace.workspace_store import WorkspaceStore


class WorkspaceProvider:
    """The process-wide side: verifies each job's grant and opens its workspace."""

    def __init__(self, signer: GrantSigner, store: WorkspaceStore, redis: Redis, keys: Keys):
        self.signer = signer
        self.store = store
        self._redis = redis
        self._keys = keys

    async def _not_revoked(self, grant: Grant) -> None:
        await check_not_revoked(self._redis, self._keys, grant)

    async def open(self, scope: JobScope) -> WorkspaceClient | Unavailable:
        if scope.grant is None:
            return Unavailable(
                f"job {scope.job_id} came with no workspace grant: submit it with "
                "grant=<token> (client.workspace_grant or `skillq workspace grant` mint one)"
            )
        grant = self.signer.verify(scope.grant)
        await self._not_revoked(grant)
        return GrantedWorkspace(grant, self.store, self.signer, self._not_revoked)
