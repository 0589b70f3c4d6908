"""The dashboard under ``/ui/`` and the live page, as static files: plain HTML
and JavaScript with no build step. The pages hold no data; they read it from
the job API with the bearer token a person pastes (kept in their browser), so
the owner rule holds as it does for any caller.

Every page is served with a Content-Security-Policy that allows scripts and
styles from this server only: even if a page put something a job wrote into
markup (they do not: text nodes only), no injected script could run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response

STATIC = Path(__file__).parent / "static"
ASSETS = {"ui.css": "text/css", "ui.js": "text/javascript"} | {
    f"{page}.js": "text/javascript" for page in ("overview", "jobs", "job", "workers")
}
STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


@cache
def text_of(name: str) -> str:
    return (STATIC / name).read_text("utf-8")


PAGES = {  # page -> its title and the header link it sits under
    "overview": ("overview", "/ui/"),
    "jobs": ("jobs", "/ui/jobs"),
    "job": ("job", "/ui/jobs"),
    "workers": ("workers and queues", "/ui/workers"),
}


def page(name: str) -> HTMLResponse:
    """One dashboard page: the shared shell with the page's script."""
    title, here = PAGES[name]
    shell = text_of("page.html").format(title=title, page=name, here=here)
    return HTMLResponse(shell, headers={**HEADERS, "Content-Security-Policy": STRICT})


@router.get("/")
async def root() -> RedirectResponse:
    """The dashboard is the front page."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_bare() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def overview() -> HTMLResponse:
    """Jobs ended per minute, run-time percentiles, queue depth."""
    return page("overview")


@router.get("/ui/jobs")
async def jobs() -> HTMLResponse:
    """Jobs newest first, filtered by state, skill and time."""
    return page("jobs")


@router.get("/ui/jobs/{job_id}")
async def job(job_id: str) -> HTMLResponse:
    """A job's whole story."""
    return page("job")


@router.get("/ui/workers")
async def workers() -> HTMLResponse:
    """Workers, queues, dead letters and schedules."""
    return page("workers")


@router.get("/ui/run")
async def run() -> HTMLResponse:
    """The live page: pick a skill, fill its args, watch it run, cancel, download."""
    return HTMLResponse(text_of("index.html"), headers=HEADERS)  # inline script and style


@router.get("/ui/assets/{name}")
async def asset(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(status_code=404)
    return Response(text_of(name), media_type=media, headers=HEADERS)
