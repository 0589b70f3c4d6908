"""The live page (/ui/run) in headless Chromium (Debian's, driven by Playwright): submit a
streaming skill and watch its text and status arrive, cancel another job."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, Response

from worker.embedded import HttpServerProcess, WorkerProcess
from worker.server.principals import new_token, token_hash

TOKEN = new_token()


@pytest.fixture(scope="module")
def server_url(
    stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> Iterator[str]:
    tokens = [{"sha256": token_hash(TOKEN), "subject": "viewer", "scopes": []}]
    env = {**stack_env, "SKILLQ_SERVER_TOKENS": json.dumps(tokens)}
    worker = start_worker(pool="threads", concurrency=2, queues="default", env=env)
    with HttpServerProcess(env) as server:
        yield server.url
    worker.stop(timeout=10)


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_page()
    page.goto(url + "/ui/run")
    page.fill("#token", TOKEN)
    page.click("#load")
    page.wait_for_function("document.querySelectorAll('#skill option').length > 0")
    return page


def status_is(page: Page, state: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        f"document.getElementById('status').dataset.state === {json.dumps(state)}",
        timeout=timeout,
    )


def result_shown(page: Page) -> str:
    page.wait_for_function("document.getElementById('result').textContent.length > 0")
    return page.inner_text("#result")


def test_a_streaming_skill_shows_its_text_and_status(browser: Browser, server_url: str) -> None:
    page = open_page(browser, server_url)
    page.select_option("#skill", "story")
    page.fill("#arg-words", "24")
    page.fill("#arg-delay", "0.05")
    page.click("#submit")
    page.wait_for_function("document.getElementById('text').textContent.split(' ').length > 3")
    status_is(page, "succeeded")
    text = page.inner_text("#text").split()
    assert len(text) == 24 and text[:4] == ["once", "upon", "a", "time"]
    assert '"words":24' in result_shown(page)
    page.close()


def test_a_job_is_cancelled_from_the_page(browser: Browser, server_url: str) -> None:
    page = open_page(browser, server_url)
    page.select_option("#skill", "sleepy")
    page.fill("#arg-seconds", "60")
    page.click("#submit")
    status_is(page, "running")
    page.click("#cancel")
    status_is(page, "cancelled")
    assert result_shown(page) == "The job was cancelled."
    page.close()


def test_a_wrong_token_is_shown(browser: Browser, server_url: str) -> None:
    page = browser.new_page()
    page.goto(server_url + "/ui/run")
    page.fill("#token", "sq_wrong")
    page.click("#load")
    page.wait_for_function("document.getElementById('connection').className === 'error'")
    assert "invalid_auth" in page.inner_text("#connection")
    page.close()


def test_artifact_names_that_mean_something_in_a_url_download(
    browser: Browser, server_url: str
) -> None:
    """Before: a name with ``?``, ``#`` or ``%2F`` linked to a 404 whose body was saved
    as the file."""
    page = open_page(browser, server_url)
    page.select_option("#skill", "odd_names")
    page.click("#submit")
    status_is(page, "succeeded")
    page.wait_for_function("document.querySelectorAll('#artifacts a').length === 4")
    statuses: dict[str, int] = {}

    def ours(response: Response) -> bool:
        return response.url.startswith(server_url + "/v1/jobs/") and "/artifacts/" in response.url

    links = page.locator("#artifacts a")
    for index in range(4):
        with page.expect_response(ours) as download:
            links.nth(index).click()
        statuses[download.value.url] = download.value.status
    assert len(statuses) == 4 and all(code in (200, 307) for code in statuses.values()), statuses
    page.close()


def test_a_stream_that_cannot_be_followed_is_not_retried(browser: Browser, server_url: str) -> None:
    """Before: a 404 event stream was asked for again 277 times in 3 s."""
    page = open_page(browser, server_url)
    asked: list[str] = []
    page.on(
        "request", lambda request: asked.append(request.url) if "/events" in request.url else None
    )
    page.evaluate("follow('no-such-job')")
    page.wait_for_function("document.getElementById('result').textContent.length > 0")
    assert "not found" in page.inner_text("#result")
    assert len(asked) == 1, asked
    page.close()


def test_a_job_that_asks_shows_a_form_and_the_answer_lets_it_go_on(
    browser: Browser,
    server_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(pool="threads", concurrency=1, queues="http", env={"SKILLQ_SKILLS": "http_skills"})
    page = open_page(browser, server_url)
    page.wait_for_function(
        "[...document.querySelectorAll('#skill option')].some(o => o.value === 'asks_to_go')"
    )
    page.select_option("#skill", "asks_to_go")
    page.click("#submit")
    status_is(page, "input_required")
    page.wait_for_function("!document.getElementById('ask').hidden")
    assert page.inner_text("#question") == "go on?"
    page.check("#answer-go")
    page.click("#respond")
    status_is(page, "succeeded")
    assert result_shown(page) == "Result: true"
    assert page.is_hidden("#ask")
