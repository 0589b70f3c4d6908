"""Schedules over HTTP (``/v1/schedules``): each caller's own.

A schedule's name is the caller's, as a job name is: it is stored under a
digest of the caller's subject, so two callers may both have ``nightly``
and neither can see, replace or remove the other's. Its jobs run as the
caller (signed with the caller's claims) and are owned by it. Admin lists
every caller's schedules. A listing is a page by name from the caller's own
index (admin: everyone's), so it costs the same however many schedules
others have; it is the bare array the route answered before paging, with
the next page in the ``Link`` and ``X-Next-Cursor`` headers, so callers
written for that array keep working. Each caller may keep
``SKILLQ_MAX_SCHEDULES_PER_OWNER`` (429 past it).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ..client.asynchronous import AsyncSkillClient
from ..core.errors import ScheduleNotFound
from ..store.schedule_index import MAX_LIMIT
from ..store.schedules import ScheduleInfo
from .jobs_api import Caller, Client, skill_info
from .principals import Principal

router = APIRouter(prefix="/v1", tags=["schedules"])


def stored_name(caller: Principal, name: str) -> str:
    digest = hashlib.sha256(caller.subject.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{digest}/{name}"


class ScheduleRequest(BaseModel):
    """A schedule to create or replace; its jobs run as the caller."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
    skill: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)
    every: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    cron: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    queue: str | None = Field(default=None, max_length=128)
    catch_up: Literal["one", "all", "none"] = "one"
    priority: int | None = Field(default=None, ge=0, le=9)


class ScheduleOut(BaseModel):
    name: str
    owner: str | None
    skill: str
    args: dict[str, Any]
    every: float | None
    cron: str | None
    timezone: str
    queue: str | None
    catch_up: str
    paused: bool
    next_run_at: float | None
    last_run_at: float | None
    last_job: str | None

    @classmethod
    def of(cls, item: ScheduleInfo, caller: Principal) -> ScheduleOut:
        spec = item.spec
        mine = spec.owner == caller.subject
        return cls(
            name=spec.name.split("/", 1)[1] if mine and "/" in spec.name else spec.name,
            owner=spec.owner,
            skill=spec.skill,
            args=spec.args,
            every=spec.every,
            cron=spec.cron,
            timezone=spec.timezone,
            queue=spec.queue,
            catch_up=spec.catch_up,
            paused=item.paused,
            next_run_at=item.next_run_at,
            last_run_at=item.last_run_at,
            last_job=item.last_job,
        )


async def owned(client: AsyncSkillClient, caller: Principal, name: str) -> ScheduleInfo:
    item = await client.schedule_info(stored_name(caller, name))
    if item is None or item.spec.owner != caller.subject:
        raise ScheduleNotFound(name)
    return item


@router.post("/schedules", status_code=201)
async def create(body: ScheduleRequest, client: Client, caller: Caller) -> ScheduleOut:
    """Create or replace the caller's schedule; 403 without the skill's scopes."""
    caller.require((await skill_info(client, body.skill)).scopes)
    made = await client.schedule(
        stored_name(caller, body.name),
        body.skill,
        body.args,
        every=body.every,
        cron=body.cron,
        timezone=body.timezone,
        queue=body.queue,
        catch_up=body.catch_up,
        priority=body.priority,
        auth=caller.claims(),
        owner=caller.subject,
    )
    return ScheduleOut.of(made, caller)


NEXT_PAGE = {
    "Link": {
        "description": "The next page (absent on the last): `</v1/schedules?limit=N&cursor=C>;"
        ' rel="next"`',
        "schema": {"type": "string"},
    },
    "X-Next-Cursor": {
        "description": "The next page's cursor, to pass back as `cursor` (absent on the last page)",
        "schema": {"type": "string"},
    },
}


def next_page_headers(limit: int, cursor: str) -> dict[str, str]:
    """The headers that lead to the page after ``cursor``. A cursor is a
    schedule's name, which keeps to letters, digits and ``._:@/-``; anything
    else (a name an older release let through) is %-escaped, so no header can
    be split or refused, and :func:`listed` reads it back unescaped."""
    token = quote(cursor, safe="/:@")
    query = urlencode({"limit": limit, "cursor": token})
    return {"Link": f'</v1/schedules?{query}>; rel="next"', "X-Next-Cursor": token}


@router.get("/schedules", responses={200: {"headers": NEXT_PAGE}})
async def listed(
    client: Client,
    caller: Caller,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="X-Next-Cursor of the previous page")
    ] = None,
) -> list[ScheduleOut]:
    """The caller's schedules (admin: everyone's) by name, ``limit`` at a time:
    the array it answered before paging, the first page of it unless
    ``cursor`` says where to go on. The ``Link`` (``rel="next"``) and
    ``X-Next-Cursor`` headers lead to the next page; neither is sent on the
    last. Only the caller's own index is read, so a cursor can never reach
    another caller's schedules."""
    owner = None if caller.admin else caller.subject
    after = None if cursor is None else unquote(cursor)
    page = await client.schedules(owner=owner, limit=limit, cursor=after)
    if page.cursor is not None:
        response.headers.update(next_page_headers(limit, page.cursor))
    return [ScheduleOut.of(item, caller) for item in page]


@router.delete("/schedules/{name}")
async def remove(name: str, client: Client, caller: Caller) -> dict[str, bool]:
    await owned(client, caller, name)
    return {"removed": await client.unschedule(stored_name(caller, name))}


@router.post("/schedules/{name}/pause")
async def pause(name: str, client: Client, caller: Caller) -> ScheduleOut:
    await owned(client, caller, name)
    await client.pause_schedule(stored_name(caller, name))
    return ScheduleOut.of(await owned(client, caller, name), caller)


@router.post("/schedules/{name}/resume")
async def resume(name: str, client: Client, caller: Caller) -> ScheduleOut:
    await owned(client, caller, name)
    await client.resume_schedule(stored_name(caller, name))
    return ScheduleOut.of(await owned(client, caller, name), caller)
