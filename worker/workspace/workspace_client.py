"""A workspace client over one verified grant: what ``ctx.workspace`` is on a
worker and what ``client.workspace(grant)`` gives an application.

Every call checks the path against the grant before it touches the store, so
a refused read or write has no effect; every call also checks the grant is
still valid (not expired, not revoked), so a revocation reaches a job that is
already running at its next access.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Awaitable, Callable

from ..core.errors import InvalidGrant, WorkspaceDenied
from .grants import Grant, GrantSigner, check_prefix
from .workspace_store import WorkspaceStore

DEFAULT_DELEGATE_TTL = 300.0

StillValid = Callable[[Grant], Awaitable[None]]


async def _always_valid(grant: Grant) -> None:
    return None


class GrantedWorkspace:
    """A :class:`~worker.interface.capabilities.WorkspaceClient` over one grant."""

    def __init__(
        self,
        grant: Grant,
        store: WorkspaceStore,
        signer: GrantSigner,
        still_valid: StillValid = _always_valid,
    ) -> None:
        self.grant = grant
        self._store = store
        self._signer = signer
        self._still_valid = still_valid

    @property
    def workspace_id(self) -> str:
        return self.grant.workspace

    @property
    def scopes(self) -> builtins.list[str]:
        return [str(scope) for scope in self.grant.scopes]

    async def _valid(self) -> None:
        if time.time() >= self.grant.expires_at:
            raise InvalidGrant(f"grant {self.grant.id} has expired")
        await self._still_valid(self.grant)

    async def read(self, path: str) -> bytes:
        self.grant.check("read", path)
        await self._valid()
        return await self._store.read(self.grant.workspace, path)

    async def write(self, path: str, data: bytes) -> None:
        self.grant.check("write", path)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"workspace data must be bytes, not {type(data).__name__}")
        await self._valid()
        await self._store.write(self.grant.workspace, path, bytes(data))

    async def list(self, prefix: str = "") -> builtins.list[str]:
        check_prefix(prefix)
        if not self.grant.readable_under(prefix):
            raise WorkspaceDenied(
                f"listing {prefix!r} in workspace {self.grant.workspace!r} needs a read scope "
                f"there; this grant holds {self.grant.shown_scopes()}"
            )
        await self._valid()
        names = await self._store.list(self.grant.workspace, prefix)
        return [name for name in names if self.grant.allows("read", name)]

    async def delegate(self, scopes: builtins.list[str], *, ttl: float | None = None) -> str:
        """A grant for a callee: scopes inside this one's, ending no later.

        Without ``ttl``: five minutes, or what this grant has left if less.
        """
        await self._valid()
        if ttl is None:
            ttl = min(DEFAULT_DELEGATE_TTL, self.grant.expires_at - time.time())
        return self._signer.mint(self.grant.workspace, scopes, ttl=ttl, parent=self.grant)
