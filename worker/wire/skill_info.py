"""What clients know of a skill before submitting: the registry's description
(merged across the workers that serve it), cached for a couple of seconds."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..core.errors import UnknownSkill
from ..store.registry import served_within

REGISTRY_CACHE_SECONDS = 2.0


class SkillInfo(BaseModel):
    """A skill as running workers (or the catalog) describe it."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    queue: str = "default"
    tags: list[str] = []
    scopes: list[str] = []
    secrets: list[str] = []
    time_limit: float | None = None
    args_schema: dict[str, Any] = {}
    workspace_access: bool = False
    concurrency: int | None = None
    key_concurrency: int | None = None
    rate_limit: str | None = None
    workers: list[str] = []
    last_seen: float | None = None

    @property
    def live(self) -> bool:
        """Whether a running worker serves the skill now (else it is known from the catalog)."""
        return bool(self.workers)


def merge_skills(
    workers: Iterable[Mapping[str, Any]], catalog: Mapping[str, Mapping[str, Any]], grace: float
) -> dict[str, SkillInfo]:
    """Skills of live workers, merged, plus catalogued ones served within ``grace``."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in workers:
        for described in entry.get("skills", []):
            item = merged.setdefault(described["name"], {**described, "workers": []})
            item["workers"].append(entry.get("hostname", "?"))
    for name, entry in catalog.items():
        if name in merged:
            merged[name]["last_seen"] = entry.get("last_seen")
        elif served_within(dict(entry), grace):
            merged[name] = {**entry, "workers": []}
    return {name: SkillInfo.model_validate(item) for name, item in merged.items()}


class SkillCache:
    """The registry as a client last read it, for at most ``REGISTRY_CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._read_at = 0.0
        self._skills: dict[str, SkillInfo] | None = None

    def stale_for(self, name: str) -> bool:
        return (
            self._skills is None
            or name not in self._skills
            or time.monotonic() - self._read_at > REGISTRY_CACHE_SECONDS
        )

    def update(self, skills: dict[str, SkillInfo]) -> list[SkillInfo]:
        self._skills, self._read_at = skills, time.monotonic()
        return [skills[name] for name in sorted(skills)]

    def get(self, name: str) -> SkillInfo:
        skills = self._skills or {}
        if name not in skills:
            raise UnknownSkill(name, list(skills))
        return skills[name]
