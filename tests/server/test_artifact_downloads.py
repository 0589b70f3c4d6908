"""Artifacts a job wrote, opened in headless Chromium (Debian's, driven by
Playwright) from a real `skillq serve` with no credential configured (anyone
on the host may open it), real workers and moto's S3 server: HTML and SVG
that run script are downloaded, never rendered, whether a person opens the
server's route or the presigned URL the dashboard's Download goes to, so the
token the dashboard keeps in this browser stays unread. Raster images alone
are shown inline, and everything carries nosniff and a sandboxing CSP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Download, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from worker.embedded import HttpServerProcess, WorkerProcess, wait_for

KEPT = "sq_the_token_the_dashboard_keeps"
PAGES = ("evil.html", "evil.svg")
ADD_LINK = """url => {
  const link = Object.assign(document.createElement("a"), { href: url, id: "open-it" });
  link.textContent = "open";
  document.body.append(link);
}"""


class Stack:
    def __init__(self, url: str, http: httpx.Client, job: str) -> None:
        self.url, self.http, self.job = url, http, job

    def route(self, name: str) -> str:
        return f"{self.url}/v1/jobs/{self.job}/artifacts/{name}"


def serve(
    env: dict[str, str], start_worker: Callable[..., WorkerProcess], queue: str
) -> Iterator[Stack]:
    """A worker on ``queue`` and a server with no credential, and a job that wrote pages."""
    worker = start_worker(pool="threads", concurrency=2, queues=queue, env=env)
    with HttpServerProcess(env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        made = http.post("/v1/jobs", json={"skill": "writes_pages", "queue": queue})
        assert made.status_code == 202, made.text
        job = str(made.json()["job_id"])

        def done() -> bool:
            return bool(http.get(f"/v1/jobs/{job}").json()["state"] == "succeeded")

        wait_for(done, 60, "the job that writes pages")
        yield Stack(server.url, http, job)
    worker.stop(timeout=10)


@pytest.fixture(scope="module")
def on_s3(stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> Iterator[Stack]:
    yield from serve({**stack_env, "SKILLQ_SKILLS": "browser_skills"}, start_worker, "browser")


@pytest.fixture(scope="module")
def on_files(
    stack_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root: Path = tmp_path_factory.mktemp("artifact-files")
    env = {**stack_env, "SKILLQ_SKILLS": "browser_skills", "SKILLQ_ARTIFACTS_URL": root.as_uri()}
    yield from serve(env, start_worker, "browser_files")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(accept_downloads=True)
    yield made
    made.close()


def dashboard(context: BrowserContext, stack: Stack) -> Page:
    """A page at the server's address whose browser keeps a dashboard token."""
    page = context.new_page()
    page.goto(stack.url + "/ui/run")
    page.evaluate("token => localStorage.setItem('skillq-token', token)", KEPT)
    return page


def open_link(page: Page, url: str) -> Download | None:
    """Follow a link to ``url`` as a person would: the download it starts, or
    None when the browser showed it as a page instead."""
    page.evaluate(ADD_LINK, url)
    try:
        with page.expect_download(timeout=10_000) as started:
            page.click("#open-it")
        return started.value
    except PlaywrightTimeout:
        return None


def nothing_ran(context: BrowserContext, stack: Stack, page: Page) -> None:
    check = context.new_page()
    check.goto(stack.url + "/ui/run")
    stolen = check.evaluate("localStorage.getItem('stolen')")
    check.close()
    assert stolen is None, f"an artifact read the dashboard's token at the server: {stolen}"
    assert page.title() != "pwned", f"the artifact's script ran at {page.url}"


@pytest.mark.parametrize("name", PAGES)
def test_a_page_a_job_wrote_is_downloaded_from_the_servers_address(
    context: BrowserContext, on_files: Stack, name: str
) -> None:
    """Before: served as text/html (image/svg+xml) inline, its script read the
    dashboard's token from localStorage at the server's address."""
    page = dashboard(context, on_files)
    download = open_link(page, on_files.route(name))
    nothing_ran(context, on_files, page)
    assert download is not None, f"{name} was shown as a page, not downloaded"
    assert download.suggested_filename == name
    assert Path(download.path()).read_bytes().startswith(b"<")


@pytest.mark.parametrize("name", PAGES)
def test_a_page_a_job_wrote_is_downloaded_from_s3(
    context: BrowserContext, on_s3: Stack, name: str
) -> None:
    """The server's route redirects to a presigned URL. Before: S3 served the
    bytes with the job's type, inline, and the script ran there."""
    page = dashboard(context, on_s3)
    download = open_link(page, on_s3.route(name))
    nothing_ran(context, on_s3, page)
    assert download is not None, f"{name} was shown as a page, not downloaded"
    assert download.suggested_filename == name


def test_the_dashboards_download_button_downloads(context: BrowserContext, on_s3: Stack) -> None:
    """Download goes to the presigned URL (?link=true). Before: the browser showed evil.html."""
    page = dashboard(context, on_s3)
    page.goto(f"{on_s3.url}/ui/jobs/{on_s3.job}")
    button = page.locator(".artifact[data-name='evil.html'] button")
    button.wait_for()
    try:
        with page.expect_download(timeout=10_000) as started:
            button.click()
        download: Download | None = started.value
    except PlaywrightTimeout:
        download = None
    nothing_ran(context, on_s3, page)
    assert download is not None, "Download showed evil.html as a page"
    assert download.suggested_filename == "evil.html"


def attachment(response: httpx.Response, name: str) -> None:
    disposition = response.headers.get("content-disposition", "")
    assert disposition.startswith("attachment") and name in disposition, disposition
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("name", PAGES)
def test_the_servers_headers_make_any_artifact_inert(on_files: Stack, name: str) -> None:
    response = on_files.http.get(on_files.route(name))
    assert response.status_code == 200
    attachment(response, name)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


def test_a_raster_image_is_shown_inline_and_still_sandboxed(on_files: Stack) -> None:
    response = on_files.http.get(on_files.route("dot.png"))
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.parametrize("name", [*PAGES, "dot.png"])
def test_presigned_urls_force_a_download_of_a_safe_type(on_s3: Stack, name: str) -> None:
    redirect = on_s3.http.get(on_s3.route(name), follow_redirects=False)
    assert redirect.status_code == 307
    link = on_s3.http.get(on_s3.route(name), params={"link": "true"}).json()["url"]
    for url in (redirect.headers["location"], link):
        response = httpx.get(url)
        assert response.status_code == 200
        disposition = response.headers.get("content-disposition", "")
        assert disposition.startswith("attachment") and name in disposition, disposition
        want = "image/png" if name == "dot.png" else "application/octet-stream"
        assert response.headers["content-type"] == want
