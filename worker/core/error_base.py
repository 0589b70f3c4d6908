"""The one base of every skillq error, apart so that the modules of errors
(:mod:`worker.core.errors` and those it gathers) can all derive from it."""

from __future__ import annotations


class SkillqError(Exception):
    """Base of all skillq errors; ``str(err)`` is a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
