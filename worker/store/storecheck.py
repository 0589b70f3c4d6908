"""``python -m worker.store.storecheck``: is the artifact store usable?

A worker runs this once at start, in a process of its own: checking S3 needs
boto3 (and botocore's data), which a worker whose skills write no artifacts
should not carry in every pool process. Prints one JSON line:
``{"ok": bool, "refused": bool, "message": str}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from ..core.errors import ArtifactStoreRefused, ArtifactStoreUnavailable, SkillqError
from ..core.settings import Settings
from .artifacts import open_store

CHECK_TIMEOUT = 30.0


@dataclass(frozen=True)
class StoreCheck:
    ok: bool
    refused: bool = False
    message: str = ""


def check_here(settings: Settings) -> StoreCheck:
    try:
        open_store(settings).check()
    except ArtifactStoreRefused as exc:
        return StoreCheck(False, True, str(exc))
    except (ArtifactStoreUnavailable, SkillqError) as exc:
        return StoreCheck(False, False, str(exc))
    return StoreCheck(True)


def check_apart(settings: Settings) -> StoreCheck:
    """:func:`check_here` in a child process (same environment)."""
    if not settings.artifacts_url.startswith("s3://"):
        return check_here(settings)  # a directory: nothing heavy to import
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
        found = json.loads(done.stdout.strip().splitlines()[-1])
        return StoreCheck(bool(found["ok"]), bool(found["refused"]), str(found["message"]))
    except (subprocess.TimeoutExpired, ValueError, KeyError, IndexError) as exc:
        return StoreCheck(False, False, f"the artifact store check did not answer: {exc}")


def main() -> None:
    result = check_here(Settings())
    sys.stdout.write(
        json.dumps({"ok": result.ok, "refused": result.refused, "message": result.message}) + "\n"
    )


if __name__ == "__main__":
    main()
