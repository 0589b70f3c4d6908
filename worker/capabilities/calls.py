"""``ctx.call`` on a worker: a call to another skill is a child job.

The child has its own job id, record, events, artifacts and result, so every
client can follow it; its record names its parent and the parent's lists its
children. It runs with the caller's identity (re-signed when
``SKILLQ_AUTH_KEY`` is set), so a call never widens the caller's scopes.

**Placement, and why it cannot deadlock.** A parent awaiting a child holds its
pool slot. When every slot held a waiting parent, a queued child could never
start. So a child whose skill is loaded in the caller's process runs *inline*:
as its own task on the caller's event loop, with its own record, events and
cancel token, taking no pool slot (a chain A → B → C completes on ``-c 1``).
Only a skill this process does not serve is queued for the workers that do,
and that wait is bounded: by the call's ``timeout``, the caller's own time
limit, or ``SKILLQ_CALL_TIMEOUT``. Past the deadline the child is cancelled
and the call returns ``ok=False``.

**Children are kept across the caller's runs.** A child's id is derived from
its caller's id, the call's number within the run (calls are numbered in the
order the handler makes them), its target, skill, args and grant. So when the
caller runs again (its worker died, it slept, it asked, it retried), the same
call finds the same child: a child that succeeded returns its stored result
without running again, one still queued or running is waited on again (an
inline one whose process died is run again here, its finished steps kept), and
one that failed or was cancelled is made anew under the next id, as a step
that raised runs again. A call the new run does not make again is ended with
its caller (FINISH ends every unfinished child).

Depth is capped (``SKILLQ_MAX_CALL_DEPTH``): a cycle fails at the cap with a
message that says so instead of filling the cluster. Cancelling a parent
cancels its children (the ``CANCEL`` script cascades, and the caller cancels
what it waits on); a child's cancel ends only the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from pydantic import ValidationError
from redis.asyncio import Redis

from ..client.recording import record_async
from ..client.subscription import RECONNECTED, Deadline, Subscription
from ..core.errors import NotReplicated, SkillqError
from ..core.settings import Settings
from ..core.tracing import tracing_for
from ..interface.a2a import A2AClient, CallResult
from ..interface.capabilities import JobScope
from ..interface.context import CancelledByCaller
from ..interface.skills import AnyArgs, SkillSet
from ..store.agents import agent_name, agents_from, remote_agents
from ..store.job_status import TERMINAL_STATES, JobStatus
from ..store.jobs import cancel_call
from ..store.keys import Keys
from ..store.registry import read_workers_async
from ..store.scripts import CANCEL, SUBMIT
from ..wire.skill_info import SkillInfo
from ..wire.submission import Order, Parent, SubmitOptions, draft
from ..wire.task_message import DirectPublish
from .call_results import call_key as call_key
from .call_results import child_job_id as child_job_id
from .call_results import refused, result_of
from .http_a2a import HttpA2AClient

SETTLE_MARGIN = 5.0  # after a cancel, how much longer than the grace a call waits for the end
MAX_GENERATIONS = 1000  # a call made anew this often (each time its child failed) is refused


class InlineRunner(Protocol):
    """Runs a child job of a skill loaded in this process, on this loop."""

    async def run(
        self,
        child_id: str,
        skill: str,
        kwargs: dict[str, Any],
        worker: str,
        trace: Mapping[str, str] | None = None,
    ) -> None:
        """Start, run and finish the child (its record ends terminal)."""
        ...


class SkillqCaller:
    """The process-wide caller; :meth:`bind` gives each job its own."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        skills: SkillSet,
        *,
        inline: InlineRunner | None,
        publish: Callable[[Order], Awaitable[None]],
        http: A2AClient | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.skills = skills
        self.inline = inline
        self.publish = publish
        self.http = http or HttpA2AClient()
        self.direct = DirectPublish.for_settings(settings)
        self._submit = redis.register_script(SUBMIT)
        self._cancel = redis.register_script(CANCEL)

    def bind(self, scope: JobScope) -> JobCaller:
        return JobCaller(self, scope)


class JobCaller:
    """``ctx.call`` for one running job."""

    def __init__(self, caller: SkillqCaller, scope: JobScope) -> None:
        self._c = caller
        self._scope = scope
        self._depth: int | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._calls = 0

    async def call(
        self,
        target: str,
        skill: str,
        *,
        args: dict[str, Any] | None = None,
        grant: str | None = None,
        timeout: float | None = None,
        budget: Mapping[str, float] | None = None,
    ) -> CallResult:
        # Numbered before the first await, so concurrent calls (gather) keep
        # the order the handler made them in on every run.
        number = self._calls
        self._calls += 1
        if target.startswith(("http://", "https://")):
            return await self._c.http.call(target, skill, args=args, grant=grant, timeout=timeout)
        planned = await self._plan(agent_name(target), skill, args or {})
        if isinstance(planned, str):  # a remote A2A agent registered by name
            return await self._c.http.call(planned, skill, args=args, grant=grant, timeout=timeout)
        if isinstance(planned, CallResult):
            return planned
        info, order_args = planned
        key = call_key(self._scope.job_id, number, target, info.name, order_args, grant)
        return await self._run_child(info, order_args, timeout, grant, key, budget)

    async def _plan(
        self, agent: str, skill: str, args: dict[str, Any]
    ) -> CallResult | str | tuple[SkillInfo, dict[str, Any]]:
        """Everything that can be refused before a child job exists."""
        depth = await self._own_depth()
        limit = self._c.settings.max_call_depth
        if depth + 1 > limit:
            return refused(
                f"call depth {depth + 1} is over SKILLQ_MAX_CALL_DEPTH={limit}: "
                f"does {self._scope.skill!r} call itself in a cycle?"
            )
        agents = agents_from(await read_workers_async(self._c.redis, self._c.keys))
        found = agents.get(agent)
        if found is None:
            raw = await self._c.redis.hget(self._c.keys.remote_agents(), agent)
            remote = remote_agents({agent: str(raw)}) if raw else {}
            if agent in remote:
                return remote[agent].url
            return refused(f"unknown agent {agent!r}; live agents: {sorted(agents)}")
        if skill not in found.skills:
            return refused(
                f"agent {agent!r} has no skill {skill!r}; it serves {list(found.skills)}"
            )
        described = found.metadata["skills"][skill]
        info = SkillInfo.model_validate({**described, "workers": found.metadata["workers"]})
        local = self._c.skills.get(skill)
        if local is not None and local.args is not AnyArgs:
            try:
                local.args.model_validate(args)
            except ValidationError as exc:
                return refused(f"invalid args for skill {skill!r}: {exc}")
        held = set(self._scope.claims.get("scopes") or ())
        missing = [scope for scope in info.scopes if scope not in held]
        if missing:
            return refused(
                f"skill {skill!r} needs scopes {missing} that this job's caller does not hold "
                f"(it holds {sorted(held)})"
            )
        return info, args

    async def _own_depth(self) -> int:
        if self._depth is None:
            raw = await self._c.redis.hget(self._c.keys.job(self._scope.job_id), "depth")
            self._depth = int(raw) if raw else 0
        return self._depth

    async def _run_child(
        self,
        info: SkillInfo,
        args: dict[str, Any],
        timeout: float | None,
        grant: str | None,
        key: str,
        budget: Mapping[str, float] | None = None,
    ) -> CallResult:
        c = self._c
        inline = c.inline is not None and info.name in c.skills
        for generation in range(MAX_GENERATIONS):
            child = child_job_id(key, generation)
            made = await self._make_child(info, args, grant, inline, child, budget)
            if isinstance(made, CallResult):
                return made
            order, existing = made
            if existing is None:
                return await self._follow(info.name, order, inline, timeout, None)
            status, ran_inline = existing
            if status.parent != self._scope.job_id:
                continue  # a job someone submitted under this id is not this call's child
            if status.state == "succeeded":
                return result_of(status, timed_out=None)  # kept from an earlier run
            if status.state in TERMINAL_STATES:
                continue  # failed or cancelled: made anew, as a step that raised runs again
            if not ran_inline:
                return await self._follow(
                    info.name, order, False, timeout, None
                )  # queued: wait again
            if inline:
                # Its process died with the caller's last run: it runs again here.
                return await self._follow(info.name, order, True, timeout, status.eta)
            # An inline child this process cannot run (other skills loaded here):
            # it is ended with its caller, and the call is made anew.
            await self._cancel_child(order.job_id)
        return refused(f"the call to {info.name!r} was made anew {MAX_GENERATIONS} times")

    async def _make_child(
        self,
        info: SkillInfo,
        args: dict[str, Any],
        grant: str | None,
        inline: bool,
        child: str,
        budget: Mapping[str, float] | None = None,
    ) -> CallResult | tuple[Order, tuple[JobStatus, bool] | None]:
        """Submit the child under its id; an existing one is returned instead."""
        c, scope = self._c, self._scope
        tracing = tracing_for(c.settings)
        name = f"skillq.submit {info.name}"
        with tracing.span(name, {"skillq.skill": info.name}, kind="PRODUCER") as span:
            try:
                options = SubmitOptions(
                    info.name,
                    args,
                    auth=scope.claims,
                    parent=Parent(scope.job_id, await self._own_depth(), inline),
                    grant=grant,
                    headers=tracing.headers(),
                    job_id=child,
                    budget=budget,
                )
                planned = draft(
                    c.settings, c.keys, info, options, direct=None if inline else c.direct
                )
            except SkillqError as exc:
                return refused(f"{type(exc).__name__}: {exc}")
            if span is not None:
                span.set_attribute("skillq.job_id", child)
            try:  # confirmed on the replicas asked for, as any submit
                _, created = await record_async(c.settings, c.redis, c._submit, planned)
            except NotReplicated as exc:
                return refused(f"NotReplicated: {exc}", child)
            if not created:  # the record exists: an earlier run made this call
                raw = cast(dict[str, str], await c.redis.hgetall(c.keys.job(child)))
                return planned.order, (JobStatus.from_hash(child, raw), raw.get("inline") == "1")
            if not inline and not planned.queued_by_script:
                try:
                    await c.publish(planned.order)
                except Exception as exc:
                    await self._cancel_child(child)
                    return refused(f"cannot queue the call: {type(exc).__name__}: {exc}", child)
        return planned.order, None

    async def _follow(
        self,
        skill: str,
        order: Order,
        inline: bool,
        timeout: float | None,
        not_before: float | None,
    ) -> CallResult:
        """Run (inline) or wait for the child until it ends or the call's time is up."""
        c, scope, child = self._c, self._scope, order.job_id
        budget = self._budget(timeout)
        expired = asyncio.Event()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(budget, expired.set)

        def cancel_with_parent() -> None:
            task = loop.create_task(self._cancel_child(child))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        scope.on_cancel(cancel_with_parent)
        watcher = loop.create_task(self._cancel_when(expired, child))
        try:
            if inline:
                assert c.inline is not None
                if not_before is not None and not_before > time.time():
                    # An inline child that slept (ctx.sleep) when its process died.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(expired.wait(), not_before - time.time())
                await c.inline.run(child, skill, order.kwargs, scope.worker, order.headers)
                status = await self._status(child)
            else:
                status = await self._wait_end(child, expired)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._cancel_child(child))
            raise
        finally:
            timer.cancel()
            watcher.cancel()
        if scope.cancelled():
            # The caller was cancelled while it waited: its cancel reaches it here.
            raise CancelledByCaller(scope.job_id)
        return result_of(status, timed_out=budget if expired.is_set() else None)

    def _budget(self, timeout: float | None) -> float:
        """Seconds the call may take: its timeout, the caller's time left, or the default."""
        limits = [] if timeout is None else [timeout]
        if self._scope.deadline is not None:
            limits.append(self._scope.deadline - time.monotonic())
        return max(0.0, min(limits)) if limits else self._c.settings.call_timeout

    async def _cancel_when(self, expired: asyncio.Event, child: str) -> None:
        await expired.wait()
        await self._cancel_child(child)

    async def _cancel_child(self, child: str) -> None:
        keys, argv = cancel_call(self._c.keys, self._c.settings, child, force=False)
        await self._c._cancel(keys=keys, args=argv)

    async def _status(self, child: str) -> JobStatus:
        raw = await self._c.redis.hgetall(self._c.keys.job(child))
        return JobStatus.from_hash(child, cast(dict[str, str], raw))

    async def _wait_end(self, child: str, expired: asyncio.Event) -> JobStatus:
        """Wait for a queued child's end; after the deadline, only a little longer."""
        settings = self._c.settings
        settle = settings.cancel_grace + settings.cancel_kill_after + SETTLE_MARGIN
        channel = Subscription(self._c.redis, self._c.keys.events(child), Deadline(None))
        async with channel:
            status = await self._status(child)
            settle_until: float | None = None
            while status.state not in TERMINAL_STATES:
                if expired.is_set():
                    settle_until = settle_until or time.monotonic() + settle
                    if time.monotonic() > settle_until:
                        return status  # cancelled, but its worker has not said so yet
                kind, envelope = await channel.get(1.0)
                if kind == RECONNECTED or (
                    envelope is not None and envelope.get("kind") == "status"
                ):
                    status = await self._status(child)
            return status
