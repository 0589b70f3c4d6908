"""Synchronous job code that awaits on a shared event loop, without a thread.

Celery's tracer and skillq's job path (``run_job``: the limiter, START, the
handler, FINISH) are synchronous; the handler is a coroutine they wait for.
In the prefork and threads pools each pool thread runs its own loop inline
for that wait. The async pool runs hundreds of jobs on one loop, so the
synchronous part of each job runs in a greenlet of its own on the loop's
thread: where it would wait for a coroutine (:func:`await_only`), it
switches back to the asyncio task that drives it, which awaits the coroutine
and switches in again with its result. No thread, no second loop, and the
tracer runs unchanged (Celery keys its request stack by greenlet when
greenlet is installed). SQLAlchemy's asyncio support bridges its
synchronous core the same way.

The coroutine a job awaits runs in the job greenlet's own ``contextvars``
context, so what its synchronous part set (the job's log capture, a trace
span) is what its handler sees, and each job's context is its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet  # type: ignore[import-untyped]

T = TypeVar("T")


class JobGreenlet(greenlet.greenlet):  # type: ignore[misc]
    """The greenlet of one job's synchronous part; its parent drives it."""


def in_job_greenlet() -> bool:
    """Whether the caller may :func:`await_only` (it runs in a job greenlet)."""
    return isinstance(greenlet.getcurrent(), JobGreenlet)


def await_only(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from a job greenlet: the loop runs other jobs meanwhile."""
    current = greenlet.getcurrent()
    if not isinstance(current, JobGreenlet):
        raise RuntimeError("await_only() outside a job of the async pool")
    return cast(T, current.parent.switch(awaitable))


async def run_in_greenlet(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run the synchronous ``fn`` in a new job greenlet, awaiting what it waits for."""
    loop = asyncio.get_running_loop()
    child = JobGreenlet(fn, greenlet.getcurrent())
    child.gr_context = contextvars.copy_context()
    asked = child.switch(*args, **kwargs)
    while not child.dead:
        try:
            if asyncio.iscoroutine(asked):
                # A task in the job's context: a cancel of this task reaches it too.
                value = await loop.create_task(asked, context=child.gr_context)
            else:
                value = await asked
        except BaseException:
            asked = child.throw(*sys.exc_info())
        else:
            asked = child.switch(value)
    return cast(T, asked)
