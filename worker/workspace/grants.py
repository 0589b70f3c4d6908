"""Workspace grants: signed capability tokens for part of a shared workspace.

A grant names a workspace, its scopes (``read:<prefix>`` / ``write:<prefix>``),
an expiry, an id, and the ids of the grants it was delegated from. It is a
JWT (RFC 7519), signed with HS256 (``SKILLQ_GRANT_KEY``) or EdDSA/Ed25519
(``SKILLQ_GRANT_PRIVATE_KEY`` to mint, ``SKILLQ_GRANT_PUBLIC_KEY`` to verify).

Why PyJWT rather than a format of our own: JWT verification exists in every
language, so a gateway or a producer in Go can mint and check grants; PyJWT
is small, well kept, and checks expiry, audience and issuer and refuses the
``none`` algorithm and algorithm confusion when the accepted algorithm is
pinned, which is where hand-rolled tokens usually go wrong.

Paths are checked here, after the rules of artifact names (relative, ``/``
separators, no ``.``/``..``/empty segments, no control characters) plus no
percent escapes, so a path means the same thing to every store and every
client that may decode it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core.errors import (
    ConfigurationError,
    InvalidArtifactName,
    InvalidGrant,
    InvalidWorkspacePath,
    WorkspaceDenied,
)
from ..core.settings import Settings
from ..store.artifacts import validate_name

WORKSPACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
GRANT_ID = re.compile(r"^[0-9a-f]{32}\Z")
ISSUER = "skillq"
AUDIENCE = "skillq:workspace"
MAX_TOKEN_BYTES = 8192
MAX_SCOPES = 64
MAX_CHAIN = 32
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
Access = Literal["read", "write"]


def check_path(path: str) -> str:
    """The path if it is a safe workspace path; :class:`InvalidWorkspacePath` if not."""
    try:
        validate_name(path)
    except InvalidArtifactName as exc:
        raise InvalidWorkspacePath(exc.name, exc.reason) from None
    if _PERCENT_ESCAPE.search(path):
        raise InvalidWorkspacePath(path, "contains a percent escape (%XX)")
    return path


def check_prefix(prefix: str) -> str:
    """A scope or listing prefix: ``""``, a path, or a path ending in ``/``."""
    if not isinstance(prefix, str):
        raise InvalidWorkspacePath(str(prefix), "a prefix must be a string")
    if prefix:
        check_path(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def check_workspace_id(workspace: str) -> str:
    if not isinstance(workspace, str) or not WORKSPACE_ID.match(workspace):
        raise InvalidGrant(
            f"workspace id {str(workspace)[:80]!r} must match {WORKSPACE_ID.pattern}"
        )
    return workspace


@dataclass(frozen=True)
class Scope:
    """``read:<prefix>`` or ``write:<prefix>``; the prefix is a plain string prefix,
    so ``write:out/`` covers ``out/a.txt`` and ``write:out`` also ``outbox.txt``."""

    access: Access
    prefix: str

    @classmethod
    def parse(cls, text: str) -> Scope:
        access, sep, prefix = str(text).partition(":")
        if not sep or access not in ("read", "write"):
            raise InvalidGrant(
                f"invalid scope {str(text)[:80]!r}: use read:<prefix> or write:<prefix> "
                "(an empty prefix is the whole workspace)"
            )
        try:
            check_prefix(prefix)
        except InvalidArtifactName as exc:
            raise InvalidGrant(f"invalid scope {text!r}: {exc.reason}") from None
        return cls("read" if access == "read" else "write", prefix)

    def covers(self, access: Access, path: str) -> bool:
        return self.access == access and path.startswith(self.prefix)

    def contains(self, other: Scope) -> bool:
        return self.access == other.access and other.prefix.startswith(self.prefix)

    def __str__(self) -> str:
        return f"{self.access}:{self.prefix}"


def parse_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    if isinstance(scopes, str):
        scopes = [scopes]  # one scope given bare: it is not a list of characters
    parsed = tuple(Scope.parse(text) for text in scopes)
    if not parsed:
        raise InvalidGrant("a grant needs at least one scope (read:<prefix> or write:<prefix>)")
    if len(parsed) > MAX_SCOPES:
        raise InvalidGrant(f"a grant holds at most {MAX_SCOPES} scopes")
    return parsed


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    id: str
    workspace: str
    scopes: tuple[Scope, ...]
    issued_at: int
    expires_at: int
    chain: tuple[str, ...] = ()  # ids of the grants this one was delegated from, root first

    def shown_scopes(self) -> str:
        return ", ".join(str(scope) for scope in self.scopes)

    def allows(self, access: Access, path: str) -> bool:
        return any(scope.covers(access, path) for scope in self.scopes)

    def check(self, access: Access, path: str) -> str:
        """The path, if valid and inside the grant; else the error that says why."""
        check_path(path)
        if not self.allows(access, path):
            raise WorkspaceDenied(
                f"{access} of {path!r} in workspace {self.workspace!r} is outside this "
                f"grant's scopes ({self.shown_scopes()})"
            )
        return path

    def readable_under(self, prefix: str) -> bool:
        """Whether any readable path starts with ``prefix`` (listing is reading)."""
        return any(
            scope.access == "read"
            and (prefix.startswith(scope.prefix) or scope.prefix.startswith(prefix))
            for scope in self.scopes
        )

    def narrowed(self, scopes: Sequence[str]) -> tuple[Scope, ...]:
        """Scopes for a delegate: each must lie inside one this grant holds."""
        wanted = parse_scopes(scopes)
        wider = [str(s) for s in wanted if not any(held.contains(s) for held in self.scopes)]
        if wider:
            raise WorkspaceDenied(
                f"cannot delegate {', '.join(wider)}: a delegate only narrows, and this grant "
                f"holds {self.shown_scopes()}"
            )
        return wanted

    @property
    def lineage(self) -> tuple[str, ...]:
        """This grant's id and every id it came from: revoking any one ends it."""
        return (*self.chain, self.id)


def _pem(value: str) -> bytes:
    """A PEM key given inline or as a path to a file holding it."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return Path(text).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read grant key file {text!r}: {exc}") from exc


class GrantSigner:
    """Mints and verifies grants with one key (HS256) or key pair (EdDSA).

    A worker that holds only the public key verifies grants but cannot
    delegate; that is the point of a key pair, and :meth:`mint` says so.
    """

    def __init__(
        self,
        *,
        algorithm: Literal["HS256", "EdDSA"],
        signing_key: Any | None,
        verifying_key: Any,
        max_ttl: float,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self.max_ttl = max_ttl

    @classmethod
    def from_settings(cls, settings: Settings) -> GrantSigner | None:
        """The signer the settings configure; None when no grant key is set."""
        private = settings.secret_value(settings.grant_private_key)
        public = settings.secret_value(settings.grant_public_key)
        shared = settings.secret_value(settings.grant_key)
        if (private or public) and shared:
            raise ConfigurationError(
                "set SKILLQ_GRANT_KEY (HS256) or SKILLQ_GRANT_PRIVATE_KEY / "
                "SKILLQ_GRANT_PUBLIC_KEY (Ed25519), not both"
            )
        if private or public:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import (
                Ed25519PrivateKey,
                Ed25519PublicKey,
            )
            from cryptography.hazmat.primitives.serialization import (
                load_pem_private_key,
                load_pem_public_key,
            )

            try:
                signing = load_pem_private_key(_pem(private), None) if private else None
                verifying = (
                    load_pem_public_key(_pem(public)) if public else signing.public_key()  # type: ignore[union-attr]
                )
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"cannot load the Ed25519 grant key: {exc}") from exc
            if signing is not None and not isinstance(signing, Ed25519PrivateKey):
                raise ConfigurationError("SKILLQ_GRANT_PRIVATE_KEY must be an Ed25519 key")
            if not isinstance(verifying, Ed25519PublicKey):
                raise ConfigurationError("SKILLQ_GRANT_PUBLIC_KEY must be an Ed25519 key")
            return cls(
                algorithm="EdDSA",
                signing_key=signing,
                verifying_key=verifying,
                max_ttl=settings.grant_max_ttl,
            )
        if shared:
            if len(shared.encode()) < 32:
                raise ConfigurationError("SKILLQ_GRANT_KEY must be at least 32 bytes")
            return cls(
                algorithm="HS256",
                signing_key=shared.encode(),
                verifying_key=shared.encode(),
                max_ttl=settings.grant_max_ttl,
            )
        return None

    @classmethod
    def required(cls, settings: Settings) -> GrantSigner:
        signer = cls.from_settings(settings)
        if signer is None:
            raise ConfigurationError(
                "workspace grants need a key: set SKILLQ_GRANT_KEY (32+ bytes, shared by "
                "clients and workers) or SKILLQ_GRANT_PRIVATE_KEY / SKILLQ_GRANT_PUBLIC_KEY"
            )
        return signer

    def mint(
        self,
        workspace: str,
        scopes: Sequence[str],
        *,
        ttl: float,
        parent: Grant | None = None,
        now: float | None = None,
    ) -> str:
        """A new grant token; under ``parent`` it may only narrow (scopes and expiry)."""
        if self._signing_key is None:
            raise ConfigurationError(
                "this process can verify grants but not mint them: it has "
                "SKILLQ_GRANT_PUBLIC_KEY but no SKILLQ_GRANT_PRIVATE_KEY"
            )
        check_workspace_id(workspace)
        if not ttl > 0:
            raise InvalidGrant(f"a grant's ttl must be positive, not {ttl!r}")
        if ttl > self.max_ttl:
            raise InvalidGrant(
                f"ttl {ttl:g} s is over SKILLQ_GRANT_MAX_TTL={self.max_ttl:g} s (revocations "
                "are kept that long, so no grant may live longer)"
            )
        issued = int(time.time() if now is None else now)
        expires = int(issued + ttl)
        chain: tuple[str, ...] = ()
        if parent is None:
            granted = parse_scopes(scopes)
        else:
            if workspace != parent.workspace:
                raise WorkspaceDenied("a delegate is for the same workspace as its grant")
            granted = parent.narrowed(scopes)
            if expires > parent.expires_at:
                raise WorkspaceDenied(
                    f"cannot delegate for {ttl:g} s: the grant held ends in "
                    f"{max(0, parent.expires_at - issued)} s, and a delegate ends no later"
                )
            chain = parent.lineage
            if len(chain) > MAX_CHAIN:
                raise WorkspaceDenied(f"grants delegate at most {MAX_CHAIN} levels deep")
        import jwt  # here, not at import: PyJWT loads cryptography (~10 MiB per process)

        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "exp": expires,
            "wsp": workspace,
            "scp": [str(scope) for scope in granted],
            "chn": list(chain),
        }
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def verify(self, token: str, *, now: float | None = None) -> Grant:
        """The grant a token carries, or :class:`InvalidGrant` saying what is wrong."""
        if not isinstance(token, str) or not token:
            raise InvalidGrant("a grant must be a non-empty string (a token from workspace_grant)")
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidGrant(f"a grant token is at most {MAX_TOKEN_BYTES} bytes")
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "aud", "iss"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidGrant("the grant has expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidGrant(
                "the grant's signature does not verify: it was forged, altered, or signed "
                "with another key"
            ) from None
        except jwt.PyJWTError as exc:
            raise InvalidGrant(f"the grant is not a valid token: {exc}") from None
        if (now if now is not None else time.time()) >= claims["exp"]:
            raise InvalidGrant("the grant has expired")
        return _grant_of(claims)


def _grant_of(claims: dict[str, Any]) -> Grant:
    grant_id, workspace = claims.get("jti"), claims.get("wsp")
    scopes, chain = claims.get("scp"), claims.get("chn", [])
    if not isinstance(grant_id, str) or not GRANT_ID.match(grant_id):
        raise InvalidGrant("the grant's id is malformed")
    if not isinstance(scopes, list) or not all(isinstance(item, str) for item in scopes):
        raise InvalidGrant("the grant's scopes are malformed")
    if not isinstance(chain, list) or not all(
        isinstance(item, str) and GRANT_ID.match(item) for item in chain
    ):
        raise InvalidGrant("the grant's delegation chain is malformed")
    try:
        parsed = parse_scopes(scopes)
        check_workspace_id(str(workspace))
    except InvalidGrant as exc:
        raise InvalidGrant(f"the grant is malformed: {exc}") from None
    return Grant(
        id=grant_id,
        workspace=str(workspace),
        scopes=parsed,
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        chain=tuple(chain),
    )


def grant_id_of(text: str) -> str:
    """A grant id, given as an id or as a token (read unverified: only its id is used)."""
    text = text.strip()
    if GRANT_ID.match(text):
        return text
    import jwt

    try:
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidGrant(f"not a grant id (32 hex digits) or a grant token: {exc}") from None
    grant_id = claims.get("jti")
    if not isinstance(grant_id, str) or not GRANT_ID.match(grant_id):
        raise InvalidGrant("the token carries no grant id")
    return grant_id
