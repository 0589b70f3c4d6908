"""The handle to a stored artifact: returned by ``write_artifact`` and carried
in a ``CallResult``, so it lives apart from both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtifactRef:
    """Opaque handle to a stored artifact."""

    name: str
    uri: str
    mime_type: str
    size_bytes: int
