"""This process's side of the deployment-wide limits (:mod:`worker.store.limits`):
ask before a limited job starts, keep its slots' leases alive while it runs,
give them back when the attempt ends.

Leases are renewed by one daemon thread per process, not by the job's event
loop, so a handler that blocks its loop does not lose its slot; a process
that dies stops renewing, and its slots end with their leases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from ..core.settings import Settings
from ..interface.skills import Skill
from ..store.keys import Keys
from ..store.limits import ADMIT, RELEASE, RENEW, Admission, admission, admit_args, plan_for
from ..store.outage import UNREACHABLE, outlast

log = logging.getLogger(__name__)


def concurrency_key_of(kwargs: Any) -> str | None:
    """The call's concurrency key, if it is one (anything else fails the job later,
    when the call is checked; here it only limits nothing)."""
    value = kwargs.get("concurrency_key") if isinstance(kwargs, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


class Limiter:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._admit = client.register_script(ADMIT)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._held: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def admit(self, skill: Skill, job_id: str, concurrency_key: str | None) -> Admission:
        """Whether the job may start now; if so, its slots are held until :meth:`release`."""
        plan = plan_for(self._keys, skill, concurrency_key)
        if plan.empty:
            return Admission(True)
        keys, args = admit_args(self._settings, plan, job_id, self._keys.job(job_id))
        reply = outlast(
            self._settings.redis_outage_budget,
            f"admitting job {job_id}",
            lambda: self._admit(keys=keys, args=args),
        )
        decision = admission(self._settings, plan, reply)
        if decision.took and plan.slots:
            with self._lock:
                self._held[job_id] = plan.slot_keys
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._keep, name="skillq-leases", daemon=True
                    )
                    self._thread.start()
        return decision

    @contextmanager
    def holding(
        self, skill: Skill, job_id: str, concurrency_key: str | None
    ) -> Iterator[Admission]:
        """Admission for one attempt; slots taken are released when it ends.
        A skill without limits costs nothing here."""
        admitted = self.admit(skill, job_id, concurrency_key) if skill.limited else Admission(True)
        try:
            yield admitted
        finally:
            if admitted.took:
                self.release(job_id)

    def release(self, job_id: str) -> None:
        with self._lock:
            keys = self._held.pop(job_id, None)
        if not keys:
            return
        try:
            self._release(keys=keys, args=[job_id])
        except UNREACHABLE as exc:
            log.warning(
                "cannot release job %s's limit slots now (%s); its lease ends them", job_id, exc
            )

    def _keep(self) -> None:
        interval = self._settings.limit_lease / 3
        while not self._stop.wait(interval):
            with self._lock:
                held = [(key, job) for job, keys in self._held.items() for key in keys]
            if not held:
                continue
            try:
                self._renew(
                    keys=[key for key, _ in held],
                    args=[repr(self._settings.limit_lease), *(job for _, job in held)],
                )
            except Exception as exc:  # the next round tries again; leases outlast a few
                log.warning("cannot renew %d limit lease(s) now: %s", len(held), exc)

    def close(self) -> None:
        self._stop.set()
