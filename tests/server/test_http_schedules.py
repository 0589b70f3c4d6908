"""``/v1/schedules``: each caller's own (two callers may share a name and
never touch each other's), their jobs run as and belong to the caller, admin
sees them all, and malformed schedules are refused with a reason."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis

from tests.conftest import wait_for
from tests.server.test_http_api import ADMIN, ALICE, BOB, api, api_env, auth
from worker.client import SkillClient
from worker.core.settings import Settings

__all__ = ["api", "api_env"]  # the fixtures this module shares


def names(api: httpx.Client, token: str) -> list[str]:
    listed = api.get("/v1/schedules", headers=auth(token))
    assert listed.status_code == 200, listed.text
    return [item["name"] for item in listed.json()]


def test_schedules_belong_to_their_caller(api: httpx.Client) -> None:
    tick = {"name": "tick", "skill": "echo", "args": {"message": "t"}, "every": 1}
    made = api.post("/v1/schedules", json=tick, headers=auth(ALICE))
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "tick" and made.json()["owner"] == "alice"
    nightly = {"name": "nightly", "skill": "echo", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    assert api.post("/v1/schedules", json=nightly, headers=auth(ALICE)).status_code == 201
    assert api.post("/v1/schedules", json=nightly, headers=auth(BOB)).status_code == 201
    assert sorted(names(api, ALICE)) == ["nightly", "tick"]
    assert names(api, BOB) == ["nightly"]
    assert len(names(api, ADMIN)) >= 3
    # Bob cannot pause or remove alice's tick, nor tell it from a missing one.
    for path in ("/v1/schedules/tick/pause", "/v1/schedules/tick/resume"):
        assert api.post(path, headers=auth(BOB)).status_code == 404
    assert api.delete("/v1/schedules/tick", headers=auth(BOB)).status_code == 404

    def alices_job() -> str | None:
        for item in api.get("/v1/schedules", headers=auth(ALICE)).json():
            if item["name"] == "tick" and item["last_job"]:
                return str(item["last_job"])
        return None

    job = wait_for(alices_job, 30, "a job of alice's schedule")
    status = api.get(f"/v1/jobs/{job}", headers=auth(ALICE))
    assert status.status_code == 200 and status.json()["owner"] == "alice"
    assert api.get(f"/v1/jobs/{job}", headers=auth(BOB)).status_code == 404
    paused = api.post("/v1/schedules/tick/pause", headers=auth(ALICE))
    assert paused.status_code == 200 and paused.json()["paused"] is True
    resumed = api.post("/v1/schedules/tick/resume", headers=auth(ALICE))
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    for token, name in ((ALICE, "tick"), (ALICE, "nightly"), (BOB, "nightly")):
        removed = api.delete(f"/v1/schedules/{name}", headers=auth(token))
        assert removed.status_code == 200 and removed.json() == {"removed": True}
    assert names(api, ALICE) == [] and names(api, BOB) == []


def test_malformed_schedules_are_refused_with_a_reason(api: httpx.Client) -> None:
    base = {"name": "bad", "skill": "echo"}
    for body, says in (
        ({**base, "every": 2, "cron": "* * * * *"}, "not both"),
        ({**base}, "not both or neither"),
        ({**base, "cron": "99 * * * *"}, "not a cron expression"),
        ({**base, "cron": "* * * * *", "timezone": "Nowhere/Land"}, "unknown time zone"),
        ({**base, "name": "../up", "every": 2}, "name"),
        ({**base, "every": 0.1}, "every"),
        ({**base, "skill": "no-such-skill", "every": 2}, "unknown skill"),
    ):
        refused = api.post("/v1/schedules", json=body, headers=auth(ALICE))
        assert 400 <= refused.status_code < 500, (body, refused.text)
        assert says in refused.text, (body, refused.text)
    nan = api.post(
        "/v1/schedules",
        content=b'{"name": "bad", "skill": "echo", "every": NaN}',
        headers={**auth(ALICE), "content-type": "application/json"},
    )
    assert nan.status_code == 400
    assert api.get("/v1/schedules").status_code == 401
    assert names(api, ALICE) == []


def test_a_callers_schedule_calls_cost_the_same_however_many_others_have(
    api: httpx.Client, settings: Settings, raw: redis.Redis
) -> None:
    # Before: pause, resume and remove looked the caller's schedule up among
    # every caller's, two reads per schedule in Redis: one caller with many
    # schedules made everyone's calls slow.
    with SkillClient(settings) as client:
        for index in range(300):
            client.schedule(f"flood-{index}", "echo", every=3600, owner="mallory")
    mine = {"name": "mine", "skill": "echo", "every": 3600}
    assert api.post("/v1/schedules", json=mine, headers=auth(ALICE)).status_code == 201

    def commands() -> int:
        return sum(int(entry["calls"]) for entry in raw.info("commandstats").values())

    calls: list[Callable[[], httpx.Response]] = [
        lambda: api.post("/v1/schedules/mine/pause", headers=auth(ALICE)),
        lambda: api.post("/v1/schedules/mine/resume", headers=auth(ALICE)),
        lambda: api.delete("/v1/schedules/mine", headers=auth(ALICE)),
    ]
    for call in calls:
        before = commands()
        answered = call()
        spent = commands() - before
        assert answered.status_code == 200, answered.text
        assert spent < 60, f"{spent} Redis commands for one schedule call"
    assert api.delete("/v1/schedules/mine", headers=auth(ALICE)).status_code == 404
