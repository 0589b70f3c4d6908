"""``celery -A worker.app worker``: the path Celery and existing deployments
use; the app itself lives in :mod:`worker.runtime.app` and is built on first use."""

from __future__ import annotations

from typing import Any

from .runtime import app as _runtime_app
from .runtime.app import create_app, create_worker_app

__all__ = ["create_app", "create_worker_app"]


def __getattr__(name: str) -> Any:
    return getattr(_runtime_app, name)
