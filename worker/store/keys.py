"""Redis key and channel names, in one place so every process agrees."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Names under one configurable prefix (DESIGN: "Redis keys and channels")."""

    prefix: str = "skillq"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}:events:{job_id}"

    def stream(self, job_id: str) -> str:
        return f"{self.prefix}:stream:{job_id}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}:cancel:{job_id}"

    def consumed(self, job_id: str) -> str:
        """Set when a signed call of the job finished, until its signature expires."""
        return f"{self.prefix}:consumed:{job_id}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}:cancel"

    @property
    def workers(self) -> str:
        """Hash: worker hostname → its registry entry (JSON)."""
        return f"{self.prefix}:workers"

    @property
    def heartbeats(self) -> str:
        """Sorted set: worker hostname scored by when its entry expires."""
        return f"{self.prefix}:heartbeats"

    @property
    def catalog(self) -> str:
        """Hash: skill name → its description and when a worker last served it."""
        return f"{self.prefix}:catalog"

    @property
    def replication_probe(self) -> str:
        """Written before a ``WAIT`` that confirms a job's outcome reached the replicas."""
        return f"{self.prefix}:replication-probe"

    @property
    def taken(self) -> str:
        """Hash: queue → jobs running now (kept by the START and FINISH scripts)."""
        return f"{self.prefix}:taken"

    @property
    def dead_letters(self) -> str:
        """List of refused queue items, newest first."""
        return f"{self.prefix}:dead"

    def schedule(self, name: str) -> str:
        """Hash: a schedule's spec, next due time, last run and job, pause, claim."""
        return f"{self.prefix}:schedule:{name}"

    @property
    def schedule_index(self) -> str:
        """Sorted set of every schedule's name, all scored 0 so it pages by name."""
        return f"{self.prefix}:schedules:names"

    def schedule_owner(self, owner: str) -> str:
        """The same for one owner's schedules: their listing and their cap."""
        return f"{self.prefix}:schedules:owner:{owner}"

    @property
    def schedule_names(self) -> str:
        """Set of every schedule's name, as written before the indexes above: what
        is left in it is folded into them by the next listing, count or add."""
        return f"{self.prefix}:schedules"

    @property
    def schedules_due(self) -> str:
        """Sorted set: schedule name scored by when it fires next (absent: paused)."""
        return f"{self.prefix}:schedules:due"

    @property
    def schedule_claims(self) -> str:
        """Counter of claims, each a token a firing worker's advance must show."""
        return f"{self.prefix}:schedules:claims"

    @property
    def delayed(self) -> str:
        """Sorted set, in the broker's database: messages waiting for their eta,
        scored by it (``delay_park.lua``)."""
        return f"{self.prefix}:delayed"

    @property
    def schedules_changed(self) -> str:
        """Pub/sub channel: a schedule was made, replaced or resumed, so the
        workers' firers, asleep until the first due time, look again."""
        return f"{self.prefix}:schedules:changed"

    @property
    def due_channel(self) -> str:
        """Pub/sub channel (broker's database): a parked message became the first
        due, or an answered job's message is due now; idle promoters look again."""
        return f"{self.prefix}:due"

    def wake(self, job_id: str) -> str:
        """Set (broker's database) when a job was answered before its waiting
        message was parked: the message is then queued at once."""
        return f"{self.prefix}:wake:{job_id}"

    @property
    def delayed_messages(self) -> str:
        """Hash beside it: each waiting message's queue list and body."""
        return f"{self.prefix}:delayed:messages"

    @property
    def leases(self) -> str:
        """Sorted set, in the broker's database: each held delivery's tag scored
        by when its lease ends (Redis time)."""
        return f"{self.prefix}:leases"

    @property
    def lease_lengths(self) -> str:
        """Hash beside it: each held delivery's lease length, its holder's."""
        return f"{self.prefix}:leases:length"

    @property
    def lease_renewed(self) -> str:
        """When any worker last renewed its delivery leases (Redis time), in the
        broker's database beside kombu's ``unacked_index``."""
        return f"{self.prefix}:lease:renewed"

    @property
    def lease_settled(self) -> str:
        """When the renewals last resumed after a pause of them all (a Redis
        restart, a partition of every worker): no lease lapses until one lease
        after it, so live workers can renew first."""
        return f"{self.prefix}:lease:settled"

    def revoked_grant(self, grant_id: str) -> str:
        """Marks a revoked workspace grant; lives ``SKILLQ_GRANT_MAX_TTL``, as long as
        any grant can."""
        return f"{self.prefix}:grant:revoked:{grant_id}"

    def owned(self, owner: str) -> str:
        """Sorted set of an owner's job ids scored by submit time (trimmed to the
        record retention by ``SUBMIT``)."""
        return f"{self.prefix}:owned:{owner}"

    def context(self, owner: str, context_id: str) -> str:
        """Sorted set of the job ids an owner submitted in one A2A context (its
        ``contextId``), scored by submit time and trimmed as the owner's index is;
        hashed, so no owner's or context's text can name another's key."""
        digest = hashlib.sha256(json.dumps([owner, context_id]).encode()).hexdigest()
        return f"{self.prefix}:context:{digest}"

    def remote_agents(self) -> str:
        """Hash: agent name → an A2A agent outside this deployment (``skillq agents add``)."""
        return f"{self.prefix}:remote-agents"

    def jobs_index(self) -> str:
        """Sorted set of job ids by creation time (``SUBMIT``, or ``START`` for jobs a
        producer queued without a record), trimmed to the record retention."""
        return f"{self.prefix}:jobs"

    def skill_index(self, skill: str) -> str:
        return f"{self.prefix}:jobs:skill:{skill}"

    def running_index(self) -> str:
        """Sorted set of running job ids by start time (``START`` adds, ends remove)."""
        return f"{self.prefix}:running"

    @property
    def quotas(self) -> str:
        """Hash of owner -> their quota, ``{"<unit>": [limit, period seconds]}``."""
        return f"{self.prefix}:quotas"

    def quota_used(self, owner_digest: str, unit: str, start: int | str) -> str:
        """What an owner's jobs spent of ``unit`` in the period from ``start``
        (``owner_digest``: SHA-1 of the owner, as the scripts write it)."""
        return f"{self.prefix}:quota:{owner_digest}:{unit}:{start}"

    def rollup(self, minute: int | str) -> str:
        """Hash of one minute's rollup (``minute``: Unix seconds // 60): jobs ended
        by outcome, run durations by bucket, queue depths (``worker.store.rollups``)."""
        return f"{self.prefix}:rollup:{minute}"

    def idempotency(self, key: str) -> str:
        """The job an idempotency key made; lives as long as a record."""
        return f"{self.prefix}:idem:{key}"

    def limit_slots(self, skill: str) -> str:
        """Sorted set: jobs running under the skill's ``concurrency``, scored by
        when their leases end."""
        return f"{self.prefix}:limit:skill:{skill}"

    def limit_key_slots(self, skill: str, key: str) -> str:
        """The same for one ``concurrency_key`` (skill names hold no ':')."""
        return f"{self.prefix}:limit:key:{skill}:{key}"

    def limit_rate(self, skill: str) -> str:
        """The skill's rate limit: when its next start is due (GCRA's TAT); its
        ``:held`` sorted set books the starts of jobs told to come back."""
        return f"{self.prefix}:limit:rate:{skill}"


ROLLUP_TTL = 25 * 3600  # seconds a minute's rollup is kept: the dashboard's last day


def lua_layout() -> str:
    """The key layout as a Lua table of the parts that follow the prefix, for the
    scripts that build keys themselves (``prelude.lua``): written from the methods
    above, so the layout lives here alone."""
    bare = Keys("")
    parts = {
        "job": bare.job(""),
        "stream": bare.stream(""),
        "events": bare.events(""),
        "cancel": bare.cancel(""),
        "cancel_channel": bare.cancel_channel,
        "taken": bare.taken,
        "running": bare.running_index(),
        "jobs": bare.jobs_index(),
        "skill_jobs": bare.skill_index(""),
        "rollup": bare.rollup(""),
        "quota": bare.quota_used("", "", "")[: -len("::")],
    }
    fields = ", ".join(f"{name} = {json.dumps(part)}" for name, part in parts.items())
    return f"local KEY = {{{fields}}}\nlocal ROLLUP_TTL = {ROLLUP_TTL}\n"
