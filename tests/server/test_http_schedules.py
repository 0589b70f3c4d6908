"""``/v1/schedules``: each caller's own (two callers may share a name and
never touch each other's), their jobs run as and belong to the caller, admin
sees them all, malformed schedules (a cron that never fires among them) are
refused with a reason, listings are paged and cost the same however many
schedules others have, and each caller's number of schedules is capped."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis

from tests.conftest import wait_for
from tests.server.test_http_api import ADMIN, ALICE, BOB, api, api_env, auth
from worker.client import SkillClient
from worker.core.errors import InvalidSubmission, TooManySchedules
from worker.core.settings import Settings
from worker.embedded import HttpServerProcess
from worker.server.principals import Principal
from worker.server.schedules_api import stored_name
from worker.store.keys import Keys
from worker.store.schedules import ScheduleSpec

__all__ = ["api", "api_env"]  # the fixtures this module shares


def names(api: httpx.Client, token: str) -> list[str]:
    """Every name the caller lists, page after page (the Link header's next)."""
    found: list[str] = []
    url: str | None = "/v1/schedules?limit=100"
    while url is not None:
        listed = api.get(url, headers=auth(token))
        assert listed.status_code == 200, listed.text
        found += [item["name"] for item in listed.json()]
        url = listed.links.get("next", {}).get("url")
    return found


def commands(raw: redis.Redis) -> int:
    """Every command Redis has run (scripts' own calls included)."""
    return sum(int(entry["calls"]) for entry in raw.info("commandstats").values())


def legacy_schedules(raw: redis.Redis, keys: Keys, names: list[str], owner: str) -> None:
    """Schedules as a release before the name indexes wrote them (a hash, the
    due set, and the one set of every name), fast, in one pipeline."""
    now = time.time()
    with raw.pipeline(transaction=False) as pipe:
        for name in names:
            spec = ScheduleSpec(name=name, skill="echo", every=3600, owner=owner, anchor=now)
            pipe.hset(
                keys.schedule(name),
                mapping={"spec": spec.model_dump_json(), "next": repr(now + 3600), "paused": "0"},
            )
            pipe.zadd(keys.schedules_due, {name: now + 3600})
            pipe.sadd(keys.schedule_names, name)
        pipe.execute()


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
        ({**base, "cron": "0 0 31 2 *"}, "cron '0 0 31 2 *' never fires"),
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

    calls: list[Callable[[], httpx.Response]] = [
        lambda: api.post("/v1/schedules/mine/pause", headers=auth(ALICE)),
        lambda: api.post("/v1/schedules/mine/resume", headers=auth(ALICE)),
        lambda: api.delete("/v1/schedules/mine", headers=auth(ALICE)),
    ]
    for call in calls:
        before = commands(raw)
        answered = call()
        spent = commands(raw) - before
        assert answered.status_code == 200, answered.text
        assert spent < 60, f"{spent} Redis commands for one schedule call"
    assert api.delete("/v1/schedules/mine", headers=auth(ALICE)).status_code == 404


def test_a_cron_that_never_fires_is_a_422_on_a_connection_that_stays_open(
    api: httpx.Client,
) -> None:
    """Before: croniter's CroniterBadDateError escaped as a 500 (an outside
    probe saw the connection reset too): February never has a 31st."""
    never = {"name": "never", "skill": "echo", "cron": "0 0 31 2 *"}
    refused = api.post("/v1/schedules", json=never, headers=auth(ALICE))
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_args", error
    assert "cron '0 0 31 2 *' never fires" in error["message"], error
    assert refused.headers.get("connection") != "close"
    assert "never" not in names(api, ALICE)  # the next request, on the same client


def test_an_old_caller_reads_a_list_and_the_headers_page_through_the_rest(
    api: httpx.Client,
) -> None:
    """Before: GET /v1/schedules answered ``{"schedules", "next_cursor"}``, and a
    caller written for the bare array it answered until paging came broke on
    it. The body is that array again (the first page); the next page's link
    is in the ``Link`` (RFC 8288) and ``X-Next-Cursor`` headers."""
    made = [f"paging-{index}" for index in range(5)]
    for token, name in [(ALICE, name) for name in made] + [(BOB, "paging-x"), (BOB, "zz")]:
        body = {"name": name, "skill": "echo", "every": 3600}
        assert api.post("/v1/schedules", json=body, headers=auth(token)).status_code == 201

    # As a caller before paging read it: one array, each item a schedule.
    old_style = api.get("/v1/schedules", headers=auth(ALICE))
    assert old_style.status_code == 200, old_style.text
    listed = old_style.json()
    assert isinstance(listed, list) and [item["name"] for item in listed] == made
    assert {"name", "skill", "every", "paused", "next_run_at"} <= set(listed[0])
    assert "link" not in old_style.headers and "x-next-cursor" not in old_style.headers

    # Paged by the Link header: every one of alice's, none of bob's.
    pages: list[list[str]] = []
    url: str | None = "/v1/schedules?limit=2"
    while url is not None:
        page = api.get(url, headers=auth(ALICE))
        assert page.status_code == 200, page.text
        pages.append([item["name"] for item in page.json()])
        url = page.links.get("next", {}).get("url")
        if url is not None:
            cursor = page.headers["x-next-cursor"]
            assert page.headers["link"] == (
                f'</v1/schedules?{urlencode({"limit": 2, "cursor": cursor})}>; rel="next"'
            )
        else:
            assert "x-next-cursor" not in page.headers
    assert pages == [made[0:2], made[2:4], made[4:]]

    # Paged by X-Next-Cursor passed back as ?cursor=: the same pages.
    by_cursor: list[list[str]] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = api.get("/v1/schedules", params=params, headers=auth(ALICE))
        by_cursor.append([item["name"] for item in page.json()])
        if "x-next-cursor" not in page.headers:
            break
        params = {"limit": 2, "cursor": page.headers["x-next-cursor"]}
    assert by_cursor == pages

    # Bob pages only his own, however alice's cursor reads.
    bobs = api.get("/v1/schedules", params={"limit": 1}, headers=auth(BOB))
    assert [item["name"] for item in bobs.json()] == ["paging-x"]
    rest = api.get(bobs.links["next"]["url"], headers=auth(BOB))
    assert [item["name"] for item in rest.json()] == ["zz"] and "link" not in rest.headers
    for token, name in [(ALICE, name) for name in made] + [(BOB, "paging-x"), (BOB, "zz")]:
        assert api.delete(f"/v1/schedules/{name}", headers=auth(token)).status_code == 200


def test_a_name_with_a_trailing_newline_is_refused(api: httpx.Client, settings: Settings) -> None:
    """Before: the client's name check (``re.match`` with ``$``) let ``nightly\\n``
    through, a name no HTTP route, header or terminal shows as written."""
    with SkillClient(settings) as client:
        with pytest.raises(InvalidSubmission, match="a schedule name"):
            client.schedule("nightly\n", "echo", every=3600)
        assert client.schedule_info("nightly\n") is None
    body = {"name": "nightly\n", "skill": "echo", "every": 3600}
    refused = api.post("/v1/schedules", json=body, headers=auth(ALICE))
    assert refused.status_code == 422, refused.text
    assert "nightly\n" not in names(api, ALICE)


def test_a_name_an_older_release_let_through_still_lists_and_fires(
    api: httpx.Client, raw: redis.Redis, settings: Settings
) -> None:
    """A schedule an older release stored as ``<name>\\n`` is read as written:
    the admin's listing pages across it (its cursor %-escaped in the headers)
    and a worker fires it. Refused on reading, it would fail every listing and
    hold up every worker's look for due schedules."""
    keys, now = Keys(settings.key_prefix), time.time()
    odd = f"legacy{uuid.uuid4().hex[:8]}"
    name = f"{odd}\n"
    spec = ScheduleSpec.model_construct(
        name=name, skill="echo", args={"message": "old"}, every=3600.0, anchor=now - 1
    )
    with raw.pipeline(transaction=False) as pipe:  # as that release wrote it
        pipe.hset(
            keys.schedule(name),
            mapping={"spec": spec.model_dump_json(), "paused": "0", "next": repr(now - 1)},
        )
        pipe.zadd(keys.schedules_due, {name: now - 1})
        pipe.sadd(keys.schedule_names, name)
        pipe.execute()
    with SkillClient(settings) as client:

        def last_job() -> str | None:
            info = client.schedule_info(name)
            return None if info is None else info.last_job

        client.schedule(f"{odd}z", "echo", every=3600)
        try:
            params: dict[str, str | int] = {"limit": 1, "cursor": odd}
            first = api.get("/v1/schedules", params=params, headers=auth(ADMIN))
            assert first.status_code == 200, first.text
            assert [item["name"] for item in first.json()] == [name]
            assert first.headers["x-next-cursor"] == f"{odd}%0A"
            after = api.get(first.links["next"]["url"], headers=auth(ADMIN))
            assert after.status_code == 200, after.text
            assert after.json()[0]["name"] == f"{odd}z"
            fired = wait_for(last_job, 30, "the old schedule's run")
            assert client.result(str(fired), timeout=30) == {"message": "old"}
        finally:
            client.unschedule(name)
            client.unschedule(f"{odd}z")


@pytest.fixture
def flood(raw: redis.Redis, settings: Settings) -> Iterator[list[str]]:
    """2,000 schedules of bob's, written as a release before the name indexes
    wrote them (so they are folded in on the way), removed afterwards."""
    keys = Keys(settings.key_prefix)
    bobs = f"{stored_name(Principal('bob'), 'flood')}-"
    made = [f"{bobs}{index:04d}" for index in range(2000)]
    legacy_schedules(raw, keys, made, "bob")
    yield made
    with SkillClient(settings) as client:
        for name in made:
            client.unschedule(name)


def test_listings_and_the_overview_cost_the_same_however_many_others_have(
    api: httpx.Client, raw: redis.Redis, settings: Settings, flood: list[str]
) -> None:
    """Before: alice's list read every caller's schedules (10,061 Redis
    commands with bob's 10,000) and the overview listed them all, every 3 s."""
    keys = Keys(settings.key_prefix)
    # One of alice's from before the indexes too: folded in, it is hers.
    legacy_schedules(raw, keys, [stored_name(Principal("alice"), "old")], "alice")
    for index in range(3):
        mine = {"name": f"mine-{index}", "skill": "echo", "every": 3600}
        assert api.post("/v1/schedules", json=mine, headers=auth(ALICE)).status_code == 201
    api.get("/v1/schedules", headers=auth(ALICE))  # folds what is left, once

    before = commands(raw)
    first = api.get("/v1/schedules", params={"limit": 2}, headers=auth(ALICE))
    spent = commands(raw) - before
    assert first.status_code == 200, first.text
    assert spent < 60, f"{spent} Redis commands for a page of alice's 4 schedules"
    assert [item["name"] for item in first.json()] == ["mine-0", "mine-1"]
    rest = api.get(
        "/v1/schedules",
        params={"limit": 2, "cursor": first.headers["x-next-cursor"]},
        headers=auth(ALICE),
    )
    assert [item["name"] for item in rest.json()] == ["mine-2", "old"]
    assert "x-next-cursor" not in rest.headers and "link" not in rest.headers
    assert raw.scard(keys.schedule_names) == 0, "the old set was folded in"

    before = commands(raw)
    admins = api.get("/v1/schedules", params={"limit": 50}, headers=auth(ADMIN))
    spent = commands(raw) - before
    assert admins.status_code == 200, admins.text
    assert spent < 120, f"{spent} Redis commands for a page of 50 of everyone's"
    assert len(admins.json()) == 50 and admins.headers["x-next-cursor"]

    # The overview reads the workers and the rollups too, which grow with the
    # session's other tests: its cost is compared with 2,000 more of bob's.
    def overview_cost() -> int:
        spent = []
        for _ in range(3):  # the least of three: other processes' commands are not its
            before = commands(raw)
            assert api.get("/v1/overview", headers=auth(ADMIN)).status_code == 200
            spent.append(commands(raw) - before)
        return min(spent)

    fewer = overview_cost()
    more = [f"{name}-more" for name in flood]
    legacy_schedules(raw, keys, more, "bob")
    try:
        api.get("/v1/schedules", headers=auth(ADMIN))  # folds them in
        grown = overview_cost() - fewer
    finally:
        with SkillClient(settings) as client:
            for name in more:
                client.unschedule(name)
    assert grown < 20, f"{grown} more Redis commands for the overview with 2,000 more schedules"
    overview = api.get("/v1/overview", headers=auth(ADMIN))
    assert overview.status_code == 200, overview.text
    assert len(overview.content) < 100_000, f"{len(overview.content)} bytes of overview"
    shown: dict[str, Any] = overview.json()
    assert shown["schedules_total"] >= 2004 and shown["schedules_paused"] >= 0
    assert 0 < len(shown["schedules"]) <= 20
    for token, name in ((ALICE, "mine-0"), (ALICE, "mine-1"), (ALICE, "mine-2"), (ALICE, "old")):
        assert api.delete(f"/v1/schedules/{name}", headers=auth(token)).status_code == 200


def test_a_callers_schedules_are_capped(
    api: httpx.Client, api_env: dict[str, str], settings: Settings
) -> None:
    """Before: nothing bounded how many schedules one caller could keep."""
    capped_env = {**api_env, "SKILLQ_MAX_SCHEDULES_PER_OWNER": "3"}
    with (
        HttpServerProcess(capped_env) as server,
        httpx.Client(base_url=server.url, timeout=60) as capped,
    ):

        def add(token: str, name: str) -> httpx.Response:
            body = {"name": name, "skill": "echo", "every": 3600}
            return capped.post("/v1/schedules", json=body, headers=auth(token))

        for index in range(3):
            assert add(ALICE, f"capped-{index}").status_code == 201
        over = add(ALICE, "capped-3")
        assert over.status_code == 429, over.text
        error = over.json()["error"]
        assert error["code"] == "too_many_schedules", error
        assert "3 schedules (SKILLQ_MAX_SCHEDULES_PER_OWNER)" in error["message"], error
        assert add(ALICE, "capped-0").status_code == 201  # replacing one is not a new one
        assert add(BOB, "capped-0").status_code == 201  # bob's count is his own
        assert capped.delete("/v1/schedules/capped-0", headers=auth(ALICE)).status_code == 200
        assert add(ALICE, "capped-3").status_code == 201
        assert sorted(names(capped, ALICE)) == ["capped-1", "capped-2", "capped-3"]
        for token, name in ((ALICE, "capped-1"), (ALICE, "capped-2"), (ALICE, "capped-3")):
            assert capped.delete(f"/v1/schedules/{name}", headers=auth(token)).status_code == 200
        assert capped.delete("/v1/schedules/capped-0", headers=auth(BOB)).status_code == 200
    # The Python client keeps the same count for an owner.
    with SkillClient(settings.model_copy(update={"max_schedules_per_owner": 2})) as client:
        client.schedule("carol-1", "echo", every=3600, owner="carol")
        client.schedule("carol-2", "echo", every=3600, owner="carol")
        with pytest.raises(TooManySchedules, match="SKILLQ_MAX_SCHEDULES_PER_OWNER"):
            client.schedule("carol-3", "echo", every=3600, owner="carol")
        assert [s.name for s in client.schedules(owner="carol")] == ["carol-1", "carol-2"]
        assert client.unschedule("carol-1") and client.unschedule("carol-2")
