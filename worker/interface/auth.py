"""Caller identity models handed to skills as ``ctx.auth``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NoAuth(BaseModel):
    """No caller identity: the default for skills that need none.

    Extra fields are ignored so a caller may send identity to a skill that
    does not use it without the job failing.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)


class ScopedAuth(BaseModel):
    """A subject and the scopes it holds; ``require_scopes`` reads ``scopes``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    subject: str = "anonymous"
    scopes: list[str] = Field(default_factory=list)
