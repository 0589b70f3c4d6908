"""A job's artifacts over HTTP: the list, the bytes (a presigned redirect on
S3), a preview safe to show inline, and a link a browser can download from.
The owner rule of the job API holds: another caller's job is not found."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlparse

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from ..core.errors import ArtifactNotFound
from ..core.media import INERT_HEADERS, disposition, raster, served_type
from .jobs_api import Caller, Client, visible
from .previews import check_size, preview_response


class ArtifactOut(BaseModel):
    name: str
    mime_type: str
    size_bytes: int
    url: str


router = APIRouter(prefix="/v1", tags=["jobs"])


def remote(uri: str) -> bool:
    return urlparse(uri).scheme == "s3"


@router.get("/jobs/{job_id}/artifacts")
async def artifacts(job_id: str, client: Client, caller: Caller) -> list[ArtifactOut]:
    current = await visible(client, caller, job_id)
    return [
        ArtifactOut(
            name=item.name,
            mime_type=item.mime_type,
            size_bytes=item.size_bytes,
            url=f"/v1/jobs/{job_id}/artifacts/{quote(item.name, safe='/')}",
        )
        for item in current.artifacts
    ]


@router.get(
    "/jobs/{job_id}/artifacts/{name:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 307: {}},
)
async def artifact(
    job_id: str,
    name: str,
    client: Client,
    caller: Caller,
    preview: Annotated[bool, Query(description="the bytes, safe to show inline")] = False,
    link: Annotated[
        bool, Query(description="JSON: a presigned URL (null: ask for the bytes)")
    ] = False,
) -> Response:
    """S3: a redirect to a presigned URL; a local store: the bytes. Either way a
    browser saves what a job wrote rather than runs it: raster images inline,
    anything else as an ``application/octet-stream`` attachment, always with
    ``nosniff`` and a sandboxing CSP (:mod:`worker.core.media`). ``preview``:
    the bytes from this server (up to 1 MiB), typed so that nothing a job wrote
    can run in a browser (images as themselves, text as text/plain). ``link``:
    ``{"url": ...}``, a presigned URL on S3 (null from a local store)."""
    current = await visible(client, caller, job_id)
    found = next((item for item in current.artifacts if item.name == name), None)
    if found is None:
        raise ArtifactNotFound(f"{job_id}/{name}")
    if preview:
        check_size(name, found.size_bytes)
        return preview_response(await client.read_artifact(found.uri), found.mime_type)
    if link:  # for a browser: where to download it from (no CORS on a redirect)
        url = await client.artifact_url(found.ref(), 600) if remote(found.uri) else None
        return JSONResponse({"url": url})
    if remote(found.uri):
        return RedirectResponse(await client.artifact_url(found.ref(), 600), status_code=307)
    data = await client.read_artifact(found.uri)
    inline = raster(found.mime_type)
    headers = {**INERT_HEADERS, "Content-Disposition": disposition(name, inline=inline)}
    return Response(data, media_type=served_type(found.mime_type), headers=headers)
