"""Artifact storage: S3 (and S3-compatible stores) or a local directory.

Keys are ``<prefix>/<job_id>/<name>``: deterministic per job, so a
redelivered job overwrites what its earlier attempt wrote instead of adding
copies. Names are checked before anything is written, so no name can reach
outside its job's prefix. boto3 is blocking; every call runs in a thread so
the worker's event loop keeps serving events and cancels.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ..core.errors import (
    ArtifactNotFound,
    ArtifactStoreRefused,
    ArtifactStoreUnavailable,
    ConfigurationError,
    InvalidArtifactName,
)
from ..core.media import disposition, served_type
from ..core.settings import Settings
from ..interface.context import ArtifactRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_NAME_BYTES = 1024
WORKSPACES_AREA = "workspaces"  # beside the job prefixes; see worker.workspace.workspace_store
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_name(name: str) -> str:
    """Refuse names that could escape the job prefix or confuse a filesystem."""
    if not isinstance(name, str) or not name:
        raise InvalidArtifactName(str(name), "must be a non-empty string")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidArtifactName(name, f"longer than {MAX_NAME_BYTES} bytes")
    if _CONTROL.search(name):
        raise InvalidArtifactName(name, "contains NUL or control characters")
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise InvalidArtifactName(name, "must be relative and use '/' separators")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise InvalidArtifactName(name, "has an empty, '.' or '..' path segment")
    return name


def validate_job_id(job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise InvalidArtifactName(job_id, "job id is not safe to use as a storage prefix")
    if job_id == WORKSPACES_AREA:
        raise InvalidArtifactName(job_id, "this job id names the workspaces area of the store")
    return job_id


class ArtifactStore(ABC):
    """Where artifact bytes live; references are URIs the store can read back."""

    @abstractmethod
    async def put(self, job_id: str, name: str, data: bytes, mime_type: str) -> ArtifactRef: ...

    @abstractmethod
    async def get(self, uri: str) -> bytes: ...

    @abstractmethod
    async def url(self, uri: str, expires: int = 3600, mime_type: str = "") -> str:
        """A URL a person or program can fetch the artifact from. Where the store
        serves it (S3), a browser saves it rather than runs it: see
        :mod:`worker.core.media`; ``mime_type`` is the type the job named."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`ArtifactStoreRefused` if this store will refuse every write,
        :class:`ArtifactStoreUnavailable` if it cannot be reached now."""


class FileArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, job_id: str, name: str) -> Path:
        return self.root / validate_job_id(job_id) / validate_name(name)

    async def put(self, job_id: str, name: str, data: bytes, mime_type: str) -> ArtifactRef:
        path = self._path(job_id, name)
        await asyncio.to_thread(_atomic_write, path, data)
        return ArtifactRef(name=name, uri=path.as_uri(), mime_type=mime_type, size_bytes=len(data))

    def _resolve(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ArtifactNotFound(uri)
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ArtifactNotFound(uri)
        return path

    async def get(self, uri: str) -> bytes:
        path = self._resolve(uri)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ArtifactNotFound(uri) from exc

    async def url(self, uri: str, expires: int = 3600, mime_type: str = "") -> str:
        return self._resolve(uri).as_uri()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactStoreRefused(f"cannot create {self.root}: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise ArtifactStoreRefused(f"{self.root} is not writable by this process")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class S3ArtifactStore(ArtifactStore):
    """boto3 is imported and its client built on first use: a worker whose
    skills write no artifacts does not carry boto3 in every process."""

    def __init__(self, client: Callable[[], S3Client], bucket: str, prefix: str) -> None:
        self._factory = client
        self._client: S3Client | None = None
        self._lock = threading.Lock()
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def client(self) -> S3Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client

    def key(self, job_id: str, name: str) -> str:
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, validate_job_id(job_id), validate_name(name)])

    async def put(self, job_id: str, name: str, data: bytes, mime_type: str) -> ArtifactRef:
        key = self.key(job_id, name)
        await self._call(
            self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=mime_type
        )
        return ArtifactRef(
            name=name, uri=f"s3://{self.bucket}/{key}", mime_type=mime_type, size_bytes=len(data)
        )

    def _key_of(self, uri: str) -> str:
        parsed = urlparse(uri)
        key = parsed.path.lstrip("/")
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise ArtifactNotFound(uri)
        if self.prefix and not key.startswith(self.prefix + "/"):
            raise ArtifactNotFound(uri)
        return key

    async def get(self, uri: str) -> bytes:
        from botocore.exceptions import ClientError

        key = self._key_of(uri)
        try:
            response = await self._call(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ArtifactNotFound(uri) from exc
            raise
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def url(self, uri: str, expires: int = 3600, mime_type: str = "") -> str:
        """Signed with the headers S3 answers with: always an attachment, typed
        so that nothing a job wrote runs where the URL is opened."""
        key = self._key_of(uri)
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentDisposition": disposition(key),
            "ResponseContentType": served_type(mime_type),
        }
        return await asyncio.to_thread(
            self.client.generate_presigned_url, "get_object", Params=params, ExpiresIn=expires
        )

    def check(self) -> None:
        from botocore.exceptions import ClientError

        try:
            asyncio.run(self._call(self.client.head_bucket, Bucket=self.bucket))
        except ClientError as exc:  # a HEAD answer has no body: only its status says why
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 404:
                raise ArtifactStoreRefused(f"bucket {self.bucket!r} does not exist") from exc
            raise ArtifactStoreRefused(f"S3 answered {status} for bucket {self.bucket!r}") from exc

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(method, **kwargs)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = exc.response.get("Error", {}).get("Code", "")
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable"):
                raise ArtifactStoreUnavailable(f"S3 returned {status} {code}") from exc
            if code in REFUSALS or status == 403:
                said = exc.response.get("Error", {}).get("Message", "")
                raise ArtifactStoreRefused(
                    f"S3 answered {status} {code} ({said}) for bucket {self.bucket!r}"
                ) from exc
            raise
        except BotoCoreError as exc:
            raise ArtifactStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc


# What S3 says when it will never accept these requests as configured.
REFUSALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "NoSuchBucket",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
    }
)


def open_store(settings: Settings) -> ArtifactStore:
    """Build the store named by ``SKILLQ_ARTIFACTS_URL``."""
    parsed = urlparse(settings.artifacts_url)
    if parsed.scheme == "file":
        return FileArtifactStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigurationError("SKILLQ_ARTIFACTS_URL must name a bucket: s3://bucket/prefix")
        return S3ArtifactStore(lambda: _s3_client(settings), parsed.netloc, parsed.path)
    raise ConfigurationError(
        f"unsupported SKILLQ_ARTIFACTS_URL {settings.artifacts_url!r}: use s3://bucket/prefix "
        "or file:///dir"
    )


def _s3_client(settings: Settings) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
