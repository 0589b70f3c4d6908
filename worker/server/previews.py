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

PREVIEW_MAX_BYTES = 1024 * 1024
IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXTUAL = ("text/", "application/json", "application/x-ndjson", "application/yaml")


def preview_type(mime_type: str) -> str:
    """The media type a preview of an artifact of ``mime_type`` is sent as."""
    base = mime_type.split(";", 1)[0].strip().lower()
    if base in IMAGES:
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
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": "inline",
            "Cache-Control": "no-store",
        },
    )
