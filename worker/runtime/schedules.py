"""Every worker fires the schedules that are due (:mod:`worker.store.schedules`).

A thread of the worker's main process looks twice a second: one script call
claims what is due, and for each due time to fire it submits the one job
that time may have (its id derived from the schedule and the time), then
advances the schedule if its claim still holds. Any number of workers do
this at once; a worker that dies mid-claim leaves the claim to lapse after
``CLAIM_HOLD`` seconds, and whoever claims next submits the same job ids.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis
from celery import Celery

from ..client.recording import record
from ..core.errors import SkillqError
from ..core.settings import Settings
from ..store.connections import sync_redis
from ..store.keys import Keys
from ..store.registry import read_catalog, read_workers
from ..store.schedules import (
    ADVANCE,
    CLAIM,
    CLAIM_HOLD,
    ScheduleSpec,
    job_id_for,
    to_fire,
)
from ..store.scripts import SUBMIT
from ..wire.skill_info import merge_skills
from ..wire.submission import SubmitOptions, draft
from ..wire.task_message import DirectPublish

log = logging.getLogger(__name__)

IDLE_LOOK = 5.0  # seconds between looks when nothing is due sooner or announced
CLAIMS_PER_LOOK = 20


class ScheduleFirer:
    """Claims due schedules and submits their jobs, from one worker."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._keys = Keys(settings.key_prefix)
        self._client: redis.Redis = sync_redis(settings)
        self._claim = self._client.register_script(CLAIM)
        self._advance = self._client.register_script(ADVANCE)
        self._submit = self._client.register_script(SUBMIT)
        self._direct = DirectPublish.for_settings(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="skillq-schedules", daemon=True)

    def start(self) -> ScheduleFirer:
        self._thread.start()
        return self

    def fire_due(self) -> int:
        """Fire what is due now; how many jobs were submitted."""
        keys = self._keys
        claimed: list[Any] = self._claim(
            keys=[keys.schedules_due, keys.schedule_claims],
            args=[keys.schedule(""), repr(CLAIM_HOLD), CLAIMS_PER_LOOK],
        )
        made = 0
        for name, first, spec_json, token in claimed:
            spec = ScheduleSpec.stored(spec_json)
            begin = float(first)
            times, following = to_fire(spec, begin, max(time.time(), begin))
            last_job = ""
            for due in times:
                job = self._submit_one(spec, due)
                if job:
                    last_job, made = job, made + 1
            self._advance(
                keys=[keys.schedules_due, keys.schedule(name)],
                args=[name, token, repr(following), repr(times[-1]) if times else "", last_job],
            )
        return made

    def _submit_one(self, spec: ScheduleSpec, due: float) -> str:
        """The job for one due time (the same id however often it is tried)."""
        job_id = job_id_for(self._keys, spec.name, due)
        skills = merge_skills(
            read_workers(self._client, self._keys),
            read_catalog(self._client, self._keys),
            self._settings.skill_grace,
        )
        info = skills.get(spec.skill)
        if info is None:
            log.error(
                "schedule %r: no worker has served skill %r within SKILLQ_SKILL_GRACE; "
                "its run due at %.3f is skipped",
                spec.name,
                spec.skill,
                due,
            )
            return ""
        options = SubmitOptions(
            spec.skill,
            dict(spec.args),
            auth=spec.auth,
            queue=spec.queue,
            job_id=job_id,
            owner=spec.owner,
            priority=spec.priority,
        )
        try:
            planned = draft(self._settings, self._keys, info, options, direct=self._direct)
        except SkillqError as exc:
            log.error("schedule %r: its run due at %.3f is refused: %s", spec.name, due, exc)
            return ""
        # Confirmed on the replicas asked for; NotReplicated leaves the claim to
        # lapse, and the same due time is fired again (the same job id).
        submitted, created = record(self._settings, self._client, self._submit, planned)
        if created:
            self._client.hset(
                self._keys.job(submitted),
                mapping={"schedule": spec.name, "scheduled_for": repr(due)},
            )
            if not planned.queued_by_script:
                planned.order.send(self._app)
            log.info("schedule %r: job %s for %.3f", spec.name, submitted, due)
        return submitted

    def next_look(self) -> float:
        """Seconds until the first schedule is due (at most :data:`IDLE_LOOK`)."""
        head = self._client.zrange(self._keys.schedules_due, 0, 0, withscores=True)
        if not head:
            return IDLE_LOOK
        return min(IDLE_LOOK, max(0.01, float(head[0][1]) - time.time()))

    def _keep(self) -> None:
        """Fire what is due, then sleep until the first due time or until a
        schedule is made or resumed (announced on ``<prefix>:schedules:changed``):
        an idle worker reads its subscription and sends Redis nothing."""
        listening: Any = None
        while not self._stop.is_set():
            try:
                if listening is None:
                    listening = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    listening.subscribe(self._keys.schedules_changed)
                self.fire_due()
                listening.get_message(timeout=self.next_look())
            except Exception as exc:  # the claim lapses and a worker tries again
                log.warning("cannot fire due schedules now: %s", exc)
                if listening is not None:
                    with contextlib.suppress(Exception):
                        listening.close()
                listening = None
                self._stop.wait(1.0)
        if listening is not None:
            with contextlib.suppress(Exception):
                listening.close()

    def stop(self) -> None:
        self._stop.set()
