"""Where workspace files live: ``<artifacts store>/workspaces/<workspace id>/``.

The same backends as artifacts (S3 or a local directory), so a deployment
configures one store. Paths reaching this module are already checked by the
grant (:func:`worker.workspace.grants.check_path`); the store checks the workspace
id again, so nothing outside ``workspaces/<id>/`` can be named.
"""

from __future__ import annotations

import asyncio
import builtins
from abc import ABC, abstractmethod
from pathlib import Path

from ..core.errors import ArtifactNotFound, ConfigurationError
from ..store.artifacts import (
    WORKSPACES_AREA,
    ArtifactStore,
    FileArtifactStore,
    S3ArtifactStore,
    _atomic_write,
)
from .grants import check_path, check_prefix, check_workspace_id

AREA = WORKSPACES_AREA
MAX_LIST = 10_000


class WorkspaceStore(ABC):
    @abstractmethod
    async def read(self, workspace: str, path: str) -> bytes:
        """The file's bytes; :class:`ArtifactNotFound` if there is none."""

    @abstractmethod
    async def write(self, workspace: str, path: str, data: bytes) -> None: ...

    @abstractmethod
    async def list(self, workspace: str, prefix: str) -> builtins.list[str]:
        """Paths starting with ``prefix``, sorted, at most ``MAX_LIST``."""


class FileWorkspaceStore(WorkspaceStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _base(self, workspace: str) -> Path:
        return self.root / check_workspace_id(workspace)

    async def read(self, workspace: str, path: str) -> bytes:
        target = self._base(workspace) / check_path(path)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactNotFound(f"workspace {workspace!r}: {path}") from exc

    async def write(self, workspace: str, path: str, data: bytes) -> None:
        target = self._base(workspace) / check_path(path)
        await asyncio.to_thread(_atomic_write, target, data)

    async def list(self, workspace: str, prefix: str) -> builtins.list[str]:
        base = self._base(workspace)
        check_prefix(prefix)
        return await asyncio.to_thread(_walk, base, prefix)


def _walk(base: Path, prefix: str) -> list[str]:
    # Walk only the directory the prefix names, not the whole workspace.
    start = base / prefix.rpartition("/")[0] if "/" in prefix else base
    if not start.is_dir():
        return []
    found = []
    for item in start.rglob("*"):
        if item.name.startswith(".tmp-") or not item.is_file() or item.is_symlink():
            continue
        name = item.relative_to(base).as_posix()
        if name.startswith(prefix):
            found.append(name)
    return sorted(found)[:MAX_LIST]


class S3WorkspaceStore(WorkspaceStore):
    """Shares the artifact store's client (and its retry and error handling)."""

    def __init__(self, artifacts: S3ArtifactStore) -> None:
        self._s3 = artifacts

    def _key(self, workspace: str, path: str) -> str:
        parts = [self._s3.prefix] if self._s3.prefix else []
        return "/".join([*parts, AREA, check_workspace_id(workspace), path])

    async def read(self, workspace: str, path: str) -> bytes:
        from botocore.exceptions import ClientError

        key = self._key(workspace, check_path(path))
        try:
            response = await self._s3._call(
                self._s3.client.get_object, Bucket=self._s3.bucket, Key=key
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ArtifactNotFound(f"workspace {workspace!r}: {path}") from exc
            raise
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def write(self, workspace: str, path: str, data: bytes) -> None:
        key = self._key(workspace, check_path(path))
        await self._s3._call(self._s3.client.put_object, Bucket=self._s3.bucket, Key=key, Body=data)

    async def list(self, workspace: str, prefix: str) -> builtins.list[str]:
        base = self._key(workspace, "")
        check_prefix(prefix)
        found: list[str] = []
        token: str | None = None
        while len(found) < MAX_LIST:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._s3._call(
                self._s3.client.list_objects_v2,
                Bucket=self._s3.bucket,
                Prefix=base + prefix,
                **extra,
            )
            found.extend(item["Key"][len(base) :] for item in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        return sorted(found)[:MAX_LIST]


class MemoryWorkspaceStore(WorkspaceStore):
    """Files in a dict, ``{workspace: {path: bytes}}``: for unit tests."""

    def __init__(self, files: dict[str, dict[str, bytes]] | None = None) -> None:
        self.files = files if files is not None else {}

    async def read(self, workspace: str, path: str) -> bytes:
        try:
            return self.files[check_workspace_id(workspace)][check_path(path)]
        except KeyError as exc:
            raise ArtifactNotFound(f"workspace {workspace!r}: {path}") from exc

    async def write(self, workspace: str, path: str, data: bytes) -> None:
        self.files.setdefault(check_workspace_id(workspace), {})[check_path(path)] = bytes(data)

    async def list(self, workspace: str, prefix: str) -> builtins.list[str]:
        check_prefix(prefix)
        names = self.files.get(check_workspace_id(workspace), {})
        return sorted(name for name in names if name.startswith(prefix))[:MAX_LIST]


def open_workspace_store(artifacts: ArtifactStore) -> WorkspaceStore:
    if isinstance(artifacts, FileArtifactStore):
        return FileWorkspaceStore(artifacts.root / AREA)
    if isinstance(artifacts, S3ArtifactStore):
        return S3WorkspaceStore(artifacts)
    raise ConfigurationError(f"workspaces need an S3 or file artifact store, not {artifacts!r}")
