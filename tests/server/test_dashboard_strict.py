"""The dashboard under its own Content-Security-Policy (not bypassed, as a
person's browser loads it), in headless Chromium (Debian's, driven by
Playwright) in front of a real `skillq serve` and a real worker: no page logs
a console error, the legends' swatches are coloured; strings a job chose
(units, queue names) that name members every JavaScript object inherits
(``constructor``) render as data; a unit that only looks valid (``usd\\n``)
is refused at submit and by ``ctx.spend``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from worker.embedded import HttpServerProcess, WorkerProcess, wait_for
from worker.server.principals import new_token, token_hash

ADMIN = new_token()
TOKENS = [{"sha256": token_hash(ADMIN), "subject": "root", "scopes": ["skillq:admin"]}]
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


class Site:
    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url, self.http = url, http
        self.jobs: dict[str, str] = {}

    def submit(self, skill: str, args: dict[str, Any], **extra: Any) -> httpx.Response:
        body = {"skill": skill, "args": args, **extra}
        return self.http.post("/v1/jobs", json=body, headers=HEADERS)

    def ended(self, job: str) -> dict[str, Any]:
        def over() -> bool:
            state = self.http.get(f"/v1/jobs/{job}", headers=HEADERS).json()["state"]
            return state in ("succeeded", "failed", "cancelled")

        wait_for(over, 60, f"job {job}")
        found: dict[str, Any] = self.http.get(f"/v1/jobs/{job}", headers=HEADERS).json()
        return found


@pytest.fixture(scope="module")
def site(stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> Iterator[Site]:
    env = {
        **stack_env,
        "SKILLQ_SKILLS": "browser_skills",
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
    }
    # A queue named "constructor": the worker samples its depth for the overview at start.
    worker = start_worker(pool="threads", concurrency=2, queues="browser,constructor", env=env)
    with HttpServerProcess(env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        made = Site(server.url, http)
        spends = [[0.25, "constructor"]]
        runs = {
            "spent": made.submit("spends_units", {"spends": spends}),
            "budgeted": made.submit(
                "spends_units", {"spends": [[0.1, "usd"]]}, budget={"constructor": 1.0}
            ),
        }
        for name, response in runs.items():
            assert response.status_code == 202, response.text
            made.jobs[name] = str(response.json()["job_id"])
            assert made.ended(made.jobs[name])["state"] == "succeeded"
        yield made
    worker.stop(timeout=10)


class Strict:
    """A page under the dashboard's own CSP: its console errors (CSP refusals
    among them) and uncaught exceptions are collected. Waits use selectors,
    which the policy allows, never evaluated strings."""

    def __init__(self, browser: Browser, site: Site) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.site = site
        self.page.goto(site.url + "/ui/run")
        self.page.evaluate("token => localStorage.setItem('skillq-token', token)", ADMIN)

    def open(self, path: str, ready: str) -> Page:
        self.page.goto(self.site.url + path)
        self.page.wait_for_selector(ready, state="attached", timeout=20_000)
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
        return self.page


@pytest.fixture
def strict(browser: Browser, site: Site) -> Iterator[Strict]:
    made = Strict(browser, site)
    yield made
    made.page.close()


def test_no_page_logs_a_console_error(strict: Strict, site: Site) -> None:
    """Before: the overview's legends set inline styles the CSP refuses (one
    console error per swatch), and a queue named constructor drew NaN points."""
    pages = {
        "/ui/": "#chart-depth .legend i",
        "/ui/?window=86400": "#chart-durations .legend i",
        "/ui/jobs": "#jobs tr[data-job]",
        f"/ui/jobs/{site.jobs['spent']}": "#timeline-table tr[data-kind]",
        "/ui/workers": "#workers-table tr[data-worker]",
        "/ui/run": "#skill option",
    }
    for path, ready in pages.items():
        strict.open(path, ready)
        assert strict.errors == [], (path, strict.errors)


def test_the_legends_swatches_are_told_apart(strict: Strict) -> None:
    """Before: every swatch was left uncoloured (transparent)."""
    page = strict.open("/ui/", "#chart-depth .legend i")
    for chart in ("chart-ended", "chart-durations", "chart-depth"):
        colours = page.eval_on_selector_all(
            f"#{chart} .legend i", "items => items.map(i => getComputedStyle(i).backgroundColor)"
        )
        assert len(colours) >= 2 and "rgba(0, 0, 0, 0)" not in colours, (chart, colours)
        if chart != "chart-depth":  # queues (the session's every one) may share a colour
            assert len(set(colours)) == len(colours), (chart, colours)
    queues = page.eval_on_selector_all("#chart-depth polyline", "l => l.map(p => p.dataset.series)")
    assert "constructor" in queues


def facts(page: Page) -> dict[str, str]:
    pairs = page.eval_on_selector_all(
        "[data-spent]", "items => items.map(i => [i.dataset.spent, i.textContent])"
    )
    return {str(unit): str(text) for unit, text in pairs}


def test_a_unit_named_constructor_leaves_the_job_page_whole(strict: Strict, site: Site) -> None:
    """Before: ``(s.spend[unit] || 0).toFixed is not a function``: no facts, no
    Cancel or Retry."""
    page = strict.open(f"/ui/jobs/{site.jobs['spent']}", "#facts dl.facts")
    assert facts(page) == {"constructor": "0.25"}
    assert page.is_enabled("#retry") and page.is_disabled("#cancel")
    page = strict.open(f"/ui/jobs/{site.jobs['budgeted']}", "#facts dl.facts")
    assert facts(page) == {"constructor": "0 of 1", "usd": "0.1"}
    assert page.is_enabled("#retry") and page.is_disabled("#cancel")
    assert strict.errors == []


def test_a_budget_unit_ending_in_a_newline_is_refused_at_submit(site: Site) -> None:
    """Before: accepted, as a budget on a unit no spend of ``usd`` is checked against."""
    refused = site.submit("spends_units", {"spends": [[0.2, "usd"]]}, budget={"usd\n": 0.05})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_args" and "a unit is" in error["message"], error


def test_ctx_spend_refuses_a_unit_ending_in_a_newline(site: Site) -> None:
    """Before: the job spent 0.2 ``usd\\n`` and succeeded."""
    made = site.submit("spends_units", {"spends": [[0.2, "usd\n"]]})
    assert made.status_code == 202, made.text
    job = site.ended(str(made.json()["job_id"]))
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "invalid_args", job["error"]
    assert "'usd\\n'" in job["error"]["message"], job["error"]
    assert job["spend"] == {}
