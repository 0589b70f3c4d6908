"""Revoked workspace grants.

A revocation is a key per grant id that lives ``SKILLQ_GRANT_MAX_TTL``: no
grant lives longer, so nothing needs cleaning up and a check costs one
``EXISTS`` over the grant's lineage (its id and the ids it was delegated
from), never a scan. Revoking a grant therefore also ends every delegate
made from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis as AsyncRedis

from ..core.errors import InvalidGrant
from ..store.keys import Keys
from .grants import Grant, grant_id_of


@dataclass(frozen=True)
class Revocation:
    """The ``SET key 1 EX ttl`` that revokes a grant (by id or token) and its delegates."""

    grant_id: str
    key: str
    ttl: int

    @classmethod
    def of(cls, keys: Keys, grant: str, max_ttl: float) -> Revocation:
        grant_id = grant_id_of(grant)
        return cls(grant_id, keys.revoked_grant(grant_id), math.ceil(max_ttl))


async def check_not_revoked(redis: AsyncRedis, keys: Keys, grant: Grant) -> None:
    """Raise :class:`InvalidGrant` if the grant or one it came from is revoked."""
    found = await redis.exists(*(keys.revoked_grant(item) for item in grant.lineage))
    if found:
        origin = " (or a grant it was delegated from)" if grant.chain else ""
        raise InvalidGrant(f"grant {grant.id}{origin} was revoked")
