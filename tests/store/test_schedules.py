"""When a schedule is due, with a fixed clock: intervals, cron in a named time
zone across both daylight-saving changes (a wall-clock time that occurs twice
fires once), what a late claim fires under each catch-up policy, and the
specs refused (a cron that never fires among them)."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from worker.core.errors import InvalidArgs
from worker.store.keys import Keys
from worker.store.schedules import (
    LATE_GRACE,
    MOST_PER_CLAIM,
    ScheduleInfo,
    ScheduleSpec,
    job_id_for,
    next_due,
    to_fire,
)

BERLIN = ZoneInfo("Europe/Berlin")


def at(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN).timestamp()


def every(seconds: float, catch_up: str = "one", anchor: float = 1000.0) -> ScheduleSpec:
    return ScheduleSpec(name="s", skill="echo", every=seconds, catch_up=catch_up, anchor=anchor)


def test_intervals_count_from_the_anchor() -> None:
    spec = every(2)
    assert next_due(spec, 1000.0) == 1002.0
    assert next_due(spec, 1001.9) == 1002.0
    assert next_due(spec, 1002.0) == 1004.0
    assert next_due(spec, 999.0) == 1002.0  # never before the first period ends


def test_cron_follows_the_wall_clock_across_spring_forward() -> None:
    """Daily at 09:00 in Berlin: 23 hours apart on the day clocks go forward."""
    spec = ScheduleSpec(name="s", skill="echo", cron="0 9 * * *", timezone="Europe/Berlin")
    saturday = at(2026, 3, 28, 9, 0)
    sunday = next_due(spec, saturday)
    assert sunday == at(2026, 3, 29, 9, 0)
    assert sunday - saturday == 23 * 3600
    # 02:30 does not exist that night: the run is at the first time after it.
    spec = ScheduleSpec(name="s", skill="echo", cron="30 2 * * *", timezone="Europe/Berlin")
    assert next_due(spec, at(2026, 3, 29, 1, 0)) == at(2026, 3, 29, 3, 0)


def test_cron_runs_both_hours_that_read_two_oclock_at_fall_back() -> None:
    spec = ScheduleSpec(name="s", skill="echo", cron="0 * * * *", timezone="Europe/Berlin")
    first = next_due(spec, at(2026, 10, 25, 0, 30))
    runs = [first]
    for _ in range(3):
        runs.append(next_due(spec, runs[-1]))
    assert [b - a for a, b in itertools.pairwise(runs)] == [3600.0] * 3
    shown = [datetime.fromtimestamp(t, BERLIN).strftime("%H:%M%z") for t in runs]
    assert shown == ["01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]


@pytest.mark.parametrize(
    ("zone", "cron", "day", "first", "second"),
    [
        ("Europe/Berlin", "30 2 * * *", (2026, 10, 25), "02:30+0200", "02:30+0100"),
        ("America/New_York", "0 1 * * *", (2026, 11, 1), "01:00-0400", "01:00-0500"),
    ],
)
def test_a_wall_clock_time_that_occurs_twice_fires_once(
    zone: str, cron: str, day: tuple[int, int, int], first: str, second: str
) -> None:
    """Before: a daily run fired at both readings of its time on the night the
    clocks go back (croniter walks the wall clock, which passes it twice)."""
    spec = ScheduleSpec(name="s", skill="echo", cron=cron, timezone=zone)
    local = ZoneInfo(zone)
    runs = [next_due(spec, datetime(*day, tzinfo=local).timestamp() - 86400)]
    for _ in range(3):
        runs.append(next_due(spec, runs[-1]))
    shown = [datetime.fromtimestamp(t, local).strftime("%m-%d %H:%M%z") for t in runs]
    on_the_day = [text for text in shown if text.startswith(f"{day[1]:02d}-{day[2]:02d}")]
    assert on_the_day == [f"{day[1]:02d}-{day[2]:02d} {first}"], shown
    assert f"{day[1]:02d}-{day[2]:02d} {second}" not in shown
    # The day the clocks go back is 25 hours long: so is the wait across it.
    assert [b - a for a, b in itertools.pairwise(runs)] == [86400.0, 90000.0, 86400.0]
    # Asked between the two readings, the next run is the next day's.
    between = datetime.strptime(f"{day[0]} {day[1]} {day[2]} {second}", "%Y %m %d %H:%M%z")
    assert next_due(spec, between.timestamp() - 60) == runs[2]


def test_a_cron_that_never_fires_is_refused_naming_it() -> None:
    """Before: croniter's CroniterBadDateError escaped (a 500 over HTTP)."""
    spec = ScheduleSpec(name="s", skill="echo", cron="0 0 31 2 *")
    with pytest.raises(InvalidArgs, match=r"cron '0 0 31 2 \*' never fires"):
        next_due(spec, at(2026, 1, 1, 0, 0))
    rare = ScheduleSpec(name="s", skill="echo", cron="0 0 29 2 *")  # leap days only
    assert datetime.fromtimestamp(next_due(rare, at(2026, 3, 1, 0, 0)), BERLIN).year == 2028


def test_a_late_claim_fires_by_the_catch_up_policy() -> None:
    now = 1000.0 + 2 * 10 + 1  # ten due times missed: 1002 ... 1020
    fired, following = to_fire(every(2, "one"), 1002.0, now)
    assert fired == [1020.0] and following == 1022.0
    fired, following = to_fire(every(2, "all"), 1002.0, now)
    assert fired == [1002.0 + 2 * k for k in range(10)] and following == 1022.0
    fired, following = to_fire(every(2, "none"), 1002.0, now)
    assert fired == [1020.0] and following == 1022.0  # 1 s late: within the grace
    hourly = every(3600, "none")
    late = 1000.0 + 3 * 3600 + LATE_GRACE + 1  # the latest missed is past the grace
    fired, following = to_fire(hourly, 1000.0 + 3600, late)
    assert fired == [] and following == 1000.0 + 4 * 3600


def test_a_claim_fires_at_most_its_share_and_skips_the_rest_to_the_present() -> None:
    now = 1000.0 + 2 * (MOST_PER_CLAIM * 3)
    fired, following = to_fire(every(2, "all"), 1002.0, now)
    assert len(fired) == MOST_PER_CLAIM and following == fired[-1] + 2  # the rest next claim
    fired, following = to_fire(every(2, "one"), 1002.0, now)
    assert fired == [now] and following == now + 2


def test_nothing_fires_before_its_time() -> None:
    assert to_fire(every(2), 1002.0, 1001.0) == ([], 1002.0)


def test_each_due_time_has_one_job_id() -> None:
    keys = Keys("p")
    assert job_id_for(keys, "s", 1002.0) == job_id_for(keys, "s", 1002.0)
    assert job_id_for(keys, "s", 1002.0) != job_id_for(keys, "s", 1004.0)
    assert job_id_for(keys, "s", 1002.0) != job_id_for(keys, "t", 1002.0)
    assert job_id_for(keys, "s", 1002.0) != job_id_for(Keys("q"), "s", 1002.0)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"every": 2, "cron": "* * * * *"}, "not both"),
        ({}, "not both or neither"),
        ({"every": 0.5}, "greater than or equal to 1"),
        ({"every": float("nan")}, "every"),
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 2, "name": "../etc"}, "a schedule name"),
        ({"every": 2, "name": "a\nb"}, "a schedule name"),
        ({"every": 2, "name": "nightly\n"}, "a schedule name"),  # re.match with $ let it by
        ({"every": 2, "catch_up": "some"}, "catch_up"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ScheduleSpec.model_validate({"name": "s", "skill": "echo", **fields})


def test_a_stored_name_an_older_release_let_through_is_still_read() -> None:
    """A name such as ``nightly\\n`` is refused when a schedule is made, but
    one an older release stored is read as written: it lists, fires and can
    be removed, instead of failing every listing and every worker's look."""
    legacy = ScheduleSpec.model_construct(name="nightly\n", skill="echo", every=60.0, anchor=0.0)
    info = ScheduleInfo.from_hash({"spec": legacy.model_dump_json(), "next": "60.0"})
    assert info.name == "nightly\n" and info.next_run_at == 60.0
    with pytest.raises(ValidationError, match="a schedule name"):
        ScheduleSpec.model_validate_json(legacy.model_dump_json())
