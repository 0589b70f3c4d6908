"""Artifact previews for the dashboard, served from this origin.

A job writes its artifacts' bytes and names their media type itself, so what
the server hands a browser must not run there: only raster images keep their
type; text and JSON are sent as ``text/plain``; anything else (HTML, SVG,
scripts) as ``application/octet-stream``. Every preview carries ``nosniff``
and a sandboxing CSP, and is capped so a page never pulls a huge object.
"""

from __future__ import annotations

from fastapi import Response

from ..core.errors import InvalidRequest
from ..core.media import INERT_HEADERS, RASTER_IMAGES, base_type

PREVIEW_MAX_BYTES = 1024 * 1024
TEXTUAL = ("text/", "application/json", "application/x-ndjson", "application/yaml")


def preview_type(mime_type: str) -> str:
    """The media type a preview of an artifact of ``mime_type`` is sent as."""
    base = base_type(mime_type)
    if base in RASTER_IMAGES:
        return base
    if base.startswith(TEXTUAL) and base not in ("text/html", "text/javascript"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def check_size(name: str, size: int) -> None:
    if size > PREVIEW_MAX_BYTES:
        raise InvalidRequest(
            f"artifact {name!r} is {size} bytes, over the {PREVIEW_MAX_BYTES}-byte preview "
            "limit: download it instead"
        )


def preview_response(data: bytes, mime_type: str) -> Response:
    return Response(
        data,
        media_type=preview_type(mime_type),
        headers={
            **INERT_HEADERS,
            "Content-Disposition": "inline",
            "Cache-Control": "no-store",
        },
    )
