"""How an artifact's bytes are handed to a browser, wherever they are served
from (this server, a presigned S3 URL).

A job writes the bytes and names their media type itself, so what it names
is never what a browser is told to render: HTML, SVG, XML, scripts or PDF
opened at the server's address would run there, with the dashboard's token
in reach. Only raster images (which cannot run script) keep their type and
may be shown inline; everything else is sent as
``application/octet-stream`` and as an attachment, so it is saved, not run.
"""

from __future__ import annotations

from urllib.parse import quote

RASTER_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# A response that runs nothing even if a browser renders it: no sniffing, and
# a sandbox (a unique origin: no cookies, no localStorage of this server's).
INERT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def base_type(mime_type: str) -> str:
    """``"Image/PNG; x=y"`` as ``"image/png"``."""
    return mime_type.split(";", 1)[0].strip().lower()


def raster(mime_type: str) -> bool:
    return base_type(mime_type) in RASTER_IMAGES


def served_type(mime_type: str) -> str:
    """The type an artifact of ``mime_type`` is served as: a raster image as
    itself, anything else (SVG too: it runs script) as bytes."""
    base = base_type(mime_type)
    return base if base in RASTER_IMAGES else "application/octet-stream"


def disposition(name: str, *, inline: bool = False) -> str:
    """A Content-Disposition naming the file by the last segment of ``name``:
    an ASCII ``filename`` for old clients, the exact name as ``filename*``."""
    leaf = name.rsplit("/", 1)[-1] or "artifact"
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in leaf)
    kind = "inline" if inline else "attachment"
    exact = quote(leaf, safe="", errors="replace")  # a lone surrogate becomes ?
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{exact}"
