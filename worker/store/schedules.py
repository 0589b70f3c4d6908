"""Schedules: a skill run every N seconds or on a cron expression, fired by
whichever worker is up, exactly one job per due time.

There is no scheduler process to forget or to run twice. Every worker looks
for due schedules and claims them atomically (``schedule_claim.lua``); the
job made for a due time has an id derived from the schedule's name and that
time, so a claim retried after a worker died submits the same job, which
``SUBMIT`` never queues twice. Cron expressions are read by croniter in the
schedule's time zone (``zoneinfo``), so they follow daylight saving time: a
wall-clock time the spring change skips fires at the first time after it, and
one the autumn change reads twice fires once, at its first reading, unless
the cron runs every hour (hour field ``*``), whose repeated hour is a real one.
A cron no date matches (``0 0 31 2 *``) is refused when it is created.
Due times missed while no worker was up follow ``catch_up``: ``one`` (the
default) fires the latest of them, ``all`` every one, ``none`` only one that
is at most :data:`LATE_GRACE` late.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..core.errors import InvalidSubmission
from .keys import Keys
from .scriptfiles import load

CatchUp = Literal["one", "all", "none"]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}")  # whole: fullmatch, never match
LATE_GRACE = 60.0  # seconds: how late a due time may fire under catch_up="none"
MOST_PER_CLAIM = 100  # due times one claim fires under catch_up="all"
CLAIM_HOLD = 30.0  # seconds before a claim a worker did not complete is retried
LONGEST_EVERY = 10 * 366 * 86400.0
STORED = {"stored": True}  # the validation context of a spec read back from Redis
JOB_NAMESPACE = uuid.UUID("5c3f0d35-6a65-4a4e-9d0b-54f36c5a7d10")

PUT = load("schedule_put")
CLAIM = load("schedule_claim")
ADVANCE = load("schedule_advance")
PAUSE = load("schedule_pause")


class ScheduleSpec(BaseModel):
    """What a schedule runs and when; stored as JSON, checked at every edge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    skill: str
    args: dict[str, Any] = {}
    every: float | None = Field(default=None, ge=1, le=LONGEST_EVERY)
    cron: str | None = None
    timezone: str = "UTC"
    queue: str | None = None
    catch_up: CatchUp = "one"
    priority: int | None = Field(default=None, ge=0, le=9)
    auth: dict[str, Any] | None = None
    owner: str | None = None
    anchor: float = 0.0  # "every": due times are anchor + k * every

    @field_validator("name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        if info.context == STORED:  # checked when it was made, by whichever release
            return value
        if not NAME.fullmatch(value):
            raise ValueError(
                "a schedule name is 1-200 letters, digits and . _ : @ / -, starting with "
                "a letter or digit"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            ) from exc
        return value

    @model_validator(mode="after")
    def _when(self) -> ScheduleSpec:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give every (seconds) or cron (an expression), not both or neither")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"not a cron expression: {self.cron!r} (e.g. '*/5 * * * *')")
        if not math.isfinite(self.anchor):
            raise ValueError("anchor must be a time")
        return self

    @classmethod
    def stored(cls, raw: str | bytes) -> ScheduleSpec:
        """A spec as Redis holds it, its name not checked again: one an older
        release let through (``nightly\\n``, when the check was ``re.match``
        with ``$``) still lists, fires and can be removed, where refusing it
        would fail every listing and every worker's look for due schedules."""
        return cls.model_validate_json(raw, context=STORED)


class ScheduleInfo(BaseModel):
    """A schedule as :meth:`~worker.client.SkillClient.schedules` lists it."""

    model_config = ConfigDict(frozen=True)

    spec: ScheduleSpec
    paused: bool = False
    next_run_at: float | None = None
    last_run_at: float | None = None
    last_job: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> ScheduleInfo:
        def number(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value else None

        return cls(
            spec=ScheduleSpec.stored(raw["spec"]),
            paused=raw.get("paused") == "1",
            next_run_at=number("next"),
            last_run_at=number("last_run_at"),
            last_job=raw.get("last_job") or None,
        )


def next_due(spec: ScheduleSpec, after: float) -> float:
    """The first due time strictly after ``after`` (Unix seconds)."""
    if spec.every is not None:
        periods = math.floor((after - spec.anchor) / spec.every) + 1
        return spec.anchor + max(periods, 1) * spec.every
    assert spec.cron is not None  # the spec's validator holds one or the other
    zone = ZoneInfo(spec.timezone)
    every_hour = croniter.expand(spec.cron)[0][1] == ["*"]
    times = croniter(spec.cron, datetime.fromtimestamp(after, zone))
    try:
        while True:
            found: datetime = times.get_next(datetime)
            if every_hour or not second_reading(found, zone):
                return found.timestamp()
    except CroniterBadDateError:
        raise InvalidSubmission(
            spec.skill, f"invalid schedule: cron {spec.cron!r} never fires (no date matches it)"
        ) from None


def second_reading(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether ``moment`` is the second time its wall-clock reading occurs (the
    hour the clocks go back repeats): a daily 02:30 has already fired then."""
    wall = moment.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    return first < moment.timestamp() and (
        datetime.fromtimestamp(first, zone).replace(tzinfo=None) == wall
    )


def to_fire(spec: ScheduleSpec, first: float, now: float) -> tuple[list[float], float]:
    """The due times to fire now, from ``first`` (the earliest not yet fired), and
    the due time after them: ``catch_up`` decides what a late claim fires."""
    if first > now:
        return [], first
    missed = [first]
    due = next_due(spec, first)
    while due <= now and len(missed) < MOST_PER_CLAIM:
        missed.append(due)
        due = next_due(spec, due)
    if spec.catch_up == "all":
        return missed, due
    if due <= now:  # more than a claim's worth were missed: skip to the present
        latest = missed[-1]
        while due <= now:
            latest, due = due, next_due(spec, due)
        missed = [latest]
    latest = missed[-1]
    if spec.catch_up == "none" and now - latest > LATE_GRACE:
        return [], due
    return [latest], due


def job_id_for(keys: Keys, name: str, due: float) -> str:
    """The one job id a schedule's due time ever gets."""
    return str(uuid.uuid5(JOB_NAMESPACE, f"{keys.prefix}\0{name}\0{due!r}"))
