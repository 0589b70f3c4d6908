"""Schedules over HTTP (``/v1/schedules``): each caller's own.

A schedule's name is the caller's, as a job name is: it is stored under a
digest of the caller's subject, so two callers may both have ``nightly``
and neither can see, replace or remove the other's. Its jobs run as the
caller (signed with the caller's claims) and are owned by it. Admin lists
every caller's schedules. A listing is a page by name from the caller's own
index (admin: everyone's), so it costs the same however many schedules
others have; each caller may keep ``SKILLQ_MAX_SCHEDULES_PER_OWNER`` (429
past it).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
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


class SchedulePageOut(BaseModel):
    schedules: list[ScheduleOut]
    next_cursor: str | None = None


@router.get("/schedules")
async def listed(
    client: Client,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
) -> SchedulePageOut:
    """A page of the caller's schedules (admin: everyone's) by name: go on
    from ``next_cursor`` (opaque) while it is not null. Only the caller's own
    index is read, so a cursor can never reach another caller's schedules."""
    owner = None if caller.admin else caller.subject
    page = await client.schedules(owner=owner, limit=limit, cursor=cursor)
    return SchedulePageOut(
        schedules=[ScheduleOut.of(item, caller) for item in page.schedules],
        next_cursor=page.cursor,
    )


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
