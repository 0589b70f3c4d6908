"""The dashboard (/ui/) in headless Chromium (Debian's, driven by Playwright),
in front of a real `skillq serve` and real workers: jobs in every state, a
failed job's story and its retry, artifacts and the timeline, workers and
queues, the charts; markup a job wrote stays text; another caller's jobs stay
hidden; no console errors. Screenshots are saved and checked not blank."""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from worker.embedded import HttpServerProcess, WorkerProcess, wait_for
from worker.server.principals import new_token, token_hash

ALICE, BOB, ADMIN = new_token(), new_token(), new_token()
TOKENS = [
    {"sha256": token_hash(ALICE), "subject": "alice", "scopes": []},
    {"sha256": token_hash(BOB), "subject": "bob", "scopes": []},
    {"sha256": token_hash(ADMIN), "subject": "root", "scopes": ["skillq:admin"]},
]
SHOTS = Path(os.environ.get("SKILLQ_SCREENSHOTS", "/tmp/skillq-screenshots"))


class Site:
    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url, self.http = url, http
        self.jobs: dict[str, str] = {}

    def submit(
        self, token: str, skill: str, args: dict[str, Any] | None = None, **extra: Any
    ) -> str:
        response = self.http.post(
            "/v1/jobs",
            json={"skill": skill, "args": args or {}, **extra},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def reached(self, token: str, job: str, state: str) -> bool:
        return self.state(token, job) == state

    def state(self, token: str, job: str) -> str:
        response = self.http.get(f"/v1/jobs/{job}", headers={"Authorization": f"Bearer {token}"})
        return str(response.json()["state"])


@pytest.fixture(scope="module")
def site(stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> Iterator[Site]:
    env = {
        **stack_env,
        "SKILLQ_SKILLS": "tasks,ext_skills,http_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
    }
    worker = start_worker(pool="threads", concurrency=4, queues="default,ext,http", env=env)
    with HttpServerProcess(env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        made = Site(server.url, http)
        jobs = made.jobs
        jobs["succeeded"] = made.submit(ALICE, "report", {"title": "Dashboard"})
        jobs["failed"] = made.submit(ALICE, "boom")
        jobs["hostile"] = made.submit(ALICE, "hostile")
        jobs["running"] = made.submit(ALICE, "sleepy", {"seconds": 300})
        jobs["queued"] = made.submit(ALICE, "echo", {"message": "later"}, countdown=3600)
        jobs["input_required"] = made.submit(ALICE, "asks_to_go")
        jobs["cancelled"] = made.submit(ALICE, "sleepy", {"seconds": 300})
        jobs["bobs"] = made.submit(BOB, "echo", {"message": "bob's own"})
        for name, want in [
            ("succeeded", "succeeded"),
            ("failed", "failed"),
            ("hostile", "failed"),
            ("running", "running"),
            ("input_required", "input_required"),
            ("cancelled", "running"),
        ]:
            wait_for(partial(made.reached, ALICE, jobs[name], want), 60, f"{name} job")
        cancelled = http.post(
            f"/v1/jobs/{jobs['cancelled']}/cancel", headers={"Authorization": f"Bearer {ALICE}"}
        )
        assert cancelled.json()["cancelled"] is True
        wait_for(lambda: made.state(ALICE, jobs["cancelled"]) == "cancelled", 30, "the cancel")
        yield made
        for name in ("running", "queued", "input_required"):
            http.post(f"/v1/jobs/{jobs[name]}/cancel", headers={"Authorization": f"Bearer {ALICE}"})
    worker.stop(timeout=10)


class Watched:
    """A page whose console errors and uncaught exceptions are collected. It
    bypasses the pages' Content-Security-Policy, which forbids the evaluated
    strings Playwright waits with; so markup that would run is caught by the
    rendering itself (text nodes only), not by the policy."""

    def __init__(self, browser: Browser, site: Site, token: str) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.site = site
        self.page.goto(site.url + "/ui/run")
        self.page.evaluate(f"localStorage.setItem('skillq-token', {json.dumps(token)})")

    def open(self, path: str) -> Page:
        self.page.goto(self.site.url + path)
        return self.page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"dashboard-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert not blank(path.read_bytes()), f"{path} is blank"

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.page.evaluate("window.__pwned === undefined"), "markup a job wrote ran"
        self.page.close()


def blank(png: bytes) -> bool:
    """Whether a PNG is one flat colour: its scanlines (after filtering) hold
    next to nothing but zeros."""
    data, at = b"", 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        if kind == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(data)
    return len(set(raw)) < 8 or sum(1 for byte in raw if byte) < len(raw) // 200


@pytest.fixture
def alice(browser: Browser, site: Site) -> Iterator[Watched]:
    watched = Watched(browser, site, ALICE)
    yield watched
    watched.close()


@pytest.fixture
def admin(browser: Browser, site: Site) -> Iterator[Watched]:
    watched = Watched(browser, site, ADMIN)
    yield watched
    watched.close()


def row_states(page: Page) -> dict[str, str]:
    found: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#jobs tr[data-job]')]"
        ".map(r => [r.dataset.job, r.dataset.state]))"
    )
    return found


def test_jobs_in_every_state_are_listed_and_filtered(alice: Watched, site: Site) -> None:
    page = alice.open("/ui/jobs")
    mine = {name: job for name, job in site.jobs.items() if name != "bobs"}
    page.wait_for_function(f"document.querySelectorAll('#jobs tr[data-job]').length >= {len(mine)}")
    shown = row_states(page)
    for name, job in mine.items():
        want = "failed" if name == "hostile" else name if name != "succeeded" else "succeeded"
        assert shown.get(job) == want, (name, shown.get(job))
    assert site.jobs["bobs"] not in shown  # another caller's job is not shown
    alice.shot("jobs")
    page = alice.open("/ui/jobs?state=failed")
    page.wait_for_function("document.querySelectorAll('#jobs tr[data-job]').length >= 2")
    shown = row_states(page)
    assert set(shown.values()) == {"failed"}
    assert {site.jobs["failed"], site.jobs["hostile"]} <= set(shown)
    assert page.input_value("#filter-state") == "failed"


def test_a_failed_job_shows_its_error_and_traceback_and_retry_links_a_new_job(
    alice: Watched, site: Site
) -> None:
    failed = site.jobs["failed"]
    page = alice.open(f"/ui/jobs/{failed}")
    page.wait_for_selector("#traceback")
    assert "gave up on purpose" in page.inner_text("#error-message")
    assert "Traceback" in page.inner_text("#traceback")
    page.wait_for_selector("#timeline-table tr[data-kind=status]")
    alice.shot("failed-job")
    page.click("#retry")
    page.wait_for_url(lambda url: "/ui/jobs/" in url and failed not in url)
    page.wait_for_function("document.querySelector('#family-list a') !== null")
    assert failed in page.inner_text("#family-list")
    retried = page.url.rsplit("/", 1)[1]
    status = site.http.get(f"/v1/jobs/{failed}", headers={"Authorization": f"Bearer {ALICE}"})
    assert status.json()["retried_by"] == [retried]


def test_a_jobs_artifacts_and_timeline_are_shown(alice: Watched, site: Site) -> None:
    page = alice.open(f"/ui/jobs/{site.jobs['succeeded']}")
    page.wait_for_selector(".artifact[data-name='report.md'] pre.artifact-text")
    assert page.inner_text(".artifact[data-name='report.md'] pre").startswith("# Dashboard")
    kinds = page.eval_on_selector_all(
        "#timeline-table tr[data-kind]", "rows => rows.map(r => r.dataset.kind)"
    )
    assert kinds[0] == "status" and kinds[-1] == "status" and "artifact" in kinds
    assert "report.md" in page.inner_text("#result-json")
    link = site.http.get(
        f"/v1/jobs/{site.jobs['succeeded']}/artifacts/report.md",
        params={"link": "true"},
        headers={"Authorization": f"Bearer {ALICE}"},
    ).json()["url"]
    assert httpx.get(link).text.startswith("# Dashboard")  # what Download goes to
    alice.shot("succeeded-job")


def test_markup_a_job_wrote_is_shown_as_text(alice: Watched, site: Site) -> None:
    page = alice.open(f"/ui/jobs/{site.jobs['hostile']}")
    page.wait_for_selector("#logs-table")
    page.wait_for_selector(".artifact[data-name='notes.json'] pre.artifact-text")
    page.wait_for_selector("#traceback")
    for where in ("#error-message", "#timeline-table", "#logs-table", "#artifacts"):
        assert "<script>" in page.inner_text(where), where
    # None of it became an element: no image, no script beyond the page's own two.
    assert page.evaluate("document.querySelectorAll('main img, main script').length") == 0
    assert page.evaluate("document.scripts.length") == 2
    # The HTML artifact is not previewed; served as a preview it would be a download.
    preview = site.http.get(
        f"/v1/jobs/{site.jobs['hostile']}/artifacts/page.html",
        params={"preview": "true"},
        headers={"Authorization": f"Bearer {ALICE}"},
    )
    assert preview.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in preview.headers["content-security-policy"]
    alice.shot("hostile-job")


def test_a_job_that_asks_is_answered_from_its_page(alice: Watched, site: Site) -> None:
    job = site.jobs["input_required"]
    page = alice.open(f"/ui/jobs/{job}")
    page.wait_for_selector("#question-card")
    assert page.inner_text("#question-text") == "go on?"
    page.check("#answer-go")
    page.click("#answer-form button[type=submit]")
    wait_for(lambda: site.state(ALICE, job) == "succeeded", 60, "the answered job")
    page.wait_for_function("document.querySelector('#state .state').dataset.state === 'succeeded'")


def test_another_callers_job_page_says_not_found(alice: Watched, site: Site) -> None:
    page = alice.open(f"/ui/jobs/{site.jobs['bobs']}")
    page.wait_for_function("!document.getElementById('banner').hidden")
    assert "not yours" in page.inner_text("#banner")
    assert "bob's own" not in page.inner_text("main")
    assert alice.errors and all("404" in error for error in alice.errors)
    alice.errors.clear()  # the refused reads, logged by the browser as failed loads


def test_workers_queues_and_charts_render_for_admin(admin: Watched, site: Site) -> None:
    page = admin.open("/ui/workers")
    page.wait_for_selector("#workers-table tr[data-worker]")
    page.wait_for_selector("#queues-table tr[data-queue='http']")
    text = page.inner_text("#workers-table")
    assert "threads" in text and "hostile" in text
    # Schedules are counted, never all listed: the page polls this every 3 s.
    counted = page.wait_for_selector("#schedules p.muted")
    assert counted is not None and re.fullmatch(
        r"\d+ kept, \d+ paused; the next to fire:", counted.inner_text()
    )
    admin.shot("workers")
    page = admin.open("/ui/")
    page.wait_for_selector("#chart-ended rect[data-outcome='failed']")
    page.wait_for_selector("#chart-durations circle[data-series='p50']")
    succeeded = int(page.inner_text("[data-total=succeeded] strong"))
    assert succeeded >= 1
    admin.shot("overview")
    page = admin.open("/ui/?window=86400")
    page.wait_for_selector("#chart-ended rect[data-outcome='succeeded']")


def test_deployment_views_need_the_admin_scope(alice: Watched, site: Site) -> None:
    for path in ("/ui/workers", "/ui/"):
        page = alice.open(path)
        page.wait_for_function("!document.getElementById('banner').hidden")
        assert "scope" in page.inner_text("#banner")
    for route in ("/v1/overview", "/v1/stats"):
        response = site.http.get(route, headers={"Authorization": f"Bearer {ALICE}"})
        assert response.status_code == 403
    assert alice.errors and all("403" in error for error in alice.errors)
    alice.errors.clear()  # the refused reads, logged by the browser as failed loads


def test_the_front_page_leads_to_the_dashboard(site: Site) -> None:
    response = site.http.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/"
    page = site.http.get("/ui/jobs")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert site.http.get("/ui/assets/../app.py").status_code == 404
