"""A submission's ``SUBMIT`` call, confirmed on the replicas asked for.

Both clients record a job the same way: the script (which also queues the
message when it can) pipelined with ``WAIT`` when replicas are required, and
undone (record, indexes, the queued message) when they were not reached,
so a submit that raised left nothing half-done. The blocking client calls
:func:`record`, the asyncio one :func:`record_async`.
"""

from __future__ import annotations

from typing import Any

from ..core.settings import Settings
from ..store.replication import (
    call_replicated,
    call_replicated_async,
    not_replicated,
    required_replicas,
    required_replicas_async,
    short,
    short_async,
    timeout_ms,
)
from ..store.scripts import UNSUBMIT
from ..wire.submission import Draft, submitted_id


def record(settings: Settings, redis: Any, script: Any, planned: Draft) -> tuple[str, bool]:
    """The job's id, and whether this call created it."""
    replicas = required_replicas(settings)
    reply, reached = call_replicated(
        redis,
        script,
        keys=planned.submit_keys,
        args=planned.submit_args,
        replicas=replicas,
        wait_ms=timeout_ms(settings),
    )
    submitted, created = submitted_id(reply, planned)
    if created and short(settings, reached, replicas):
        redis.register_script(UNSUBMIT)(
            keys=planned.submit_keys, args=planned.unsubmit_args(submitted)
        )
        raise not_replicated(settings, submitted, replicas, reached)
    return submitted, created


async def record_async(
    settings: Settings, redis: Any, script: Any, planned: Draft
) -> tuple[str, bool]:
    """The asyncio twin of :func:`record`."""
    replicas = await required_replicas_async(settings)
    reply, reached = await call_replicated_async(
        redis,
        script,
        keys=planned.submit_keys,
        args=planned.submit_args,
        replicas=replicas,
        wait_ms=timeout_ms(settings),
    )
    submitted, created = submitted_id(reply, planned)
    if created and await short_async(settings, reached, replicas):
        await redis.register_script(UNSUBMIT)(
            keys=planned.submit_keys, args=planned.unsubmit_args(submitted)
        )
        raise not_replicated(settings, submitted, replicas, reached)
    return submitted, created
