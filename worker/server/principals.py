"""Who is calling the HTTP server: bearer tokens mapped to a subject and scopes.

Tokens are kept hashed (SHA-256) in ``SKILLQ_SERVER_TOKENS`` or the JSON file
``SKILLQ_SERVER_TOKENS_FILE``::

    [{"sha256": "<hex of the token>", "subject": "alice", "scopes": ["reports"]}]

``skillq token new SUBJECT --scope S`` makes a token and its entry. A JWT is
accepted instead when ``SKILLQ_SERVER_JWT_KEY`` (HS256) or
``SKILLQ_SERVER_JWT_PUBLIC_KEY`` (a PEM: RS256, ES256 or EdDSA) is set; its
``sub`` is the subject and ``scope`` (space-separated) or ``scopes`` the
scopes, and ``exp`` is required. The server signs the subject and scopes into
each job's ``auth``, so what a request body says about identity is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from ..core.errors import ConfigurationError, InvalidAuth, MissingScopes, SkillqError
from ..core.settings import Settings

ANONYMOUS = "anonymous"
# Namespaces of the job ids callers name: a job API ``job_id``, an A2A ``messageId``.
JOB_NAMES = uuid.UUID("9d1b7f0e-4c3a-4e55-8f2b-6a1e0c7d9b31")
MESSAGE_IDS = uuid.UUID("3f5d1c2e-8b7a-4d6e-9c1f-2a3b4c5d6e7f")


class Unauthenticated(InvalidAuth):
    """No credentials, or credentials that do not verify (HTTP 401)."""

    def __init__(self, detail: str) -> None:
        SkillqError.__init__(self, detail)
        self.skill = ""
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: tuple[str, ...] = ()
    admin: bool = False

    def claims(self) -> dict[str, Any]:
        """What a job's ``auth`` says about its caller (``ScopedAuth`` reads it)."""
        return {"subject": self.subject, "scopes": list(self.scopes)}

    def require(self, scopes: Sequence[str]) -> None:
        """:class:`MissingScopes` unless the caller holds ``scopes`` (admin holds all)."""
        if not self.admin:
            MissingScopes.check(scopes, self.scopes)

    def may_see(self, owner: str | None) -> bool:
        return self.admin or owner == self.subject

    def job_id(self, namespace: uuid.UUID, name: str) -> str:
        """The job id a name this caller chose stands for.

        Job ids are global, so a caller who could pick one could take the id
        another caller's submission will use (making it fail) or probe which
        ids exist. A name is the caller's own instead: the id is derived from
        it and the subject, so the same name is the same job for its caller
        and a different job for anyone else. JSON keeps the pair unambiguous
        (and encodable, lone surrogates included).
        """
        return str(uuid.uuid5(namespace, json.dumps([self.subject, name])))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "sq_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenEntry:
    digest: str
    subject: str
    scopes: tuple[str, ...]


def _entries(text: str, where: str) -> list[TokenEntry]:
    try:
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise ValueError("not a JSON list")
        found = []
        for item in raw:
            digest, subject = str(item["sha256"]).lower(), str(item["subject"])
            scopes = item.get("scopes", [])
            if len(digest) != 64 or not subject or not isinstance(scopes, list):
                raise ValueError(f"malformed entry for {subject!r}")
            found.append(TokenEntry(digest, subject, tuple(str(scope) for scope in scopes)))
        return found
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"{where} is not a list of token entries: {exc}") from exc


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`."""

    def __init__(self, settings: Settings) -> None:
        entries: list[TokenEntry] = []
        inline = settings.secret_value(settings.server_tokens)
        if inline:
            entries += _entries(inline, "SKILLQ_SERVER_TOKENS")
        if settings.server_tokens_file is not None:
            try:
                text = settings.server_tokens_file.read_text()
            except OSError as exc:
                raise ConfigurationError(f"cannot read SKILLQ_SERVER_TOKENS_FILE: {exc}") from exc
            entries += _entries(text, str(settings.server_tokens_file))
        self._tokens = {entry.digest: entry for entry in entries}
        self.admin_scope = settings.server_admin_scope
        self.audience = settings.server_jwt_audience
        self._jwt_key: Any = None
        self._jwt_algorithms: list[str] = []
        shared = settings.secret_value(settings.server_jwt_key)
        public = settings.secret_value(settings.server_jwt_public_key)
        if shared and public:
            raise ConfigurationError(
                "set SKILLQ_SERVER_JWT_KEY or SKILLQ_SERVER_JWT_PUBLIC_KEY, not both"
            )
        if shared:
            self._jwt_key, self._jwt_algorithms = shared.encode(), ["HS256"]
        elif public:
            self._jwt_key, self._jwt_algorithms = _public_key(public)

    @property
    def configured(self) -> bool:
        """Whether any credential can be checked (else every caller is anonymous)."""
        return bool(self._tokens) or self._jwt_key is not None

    def principal(self, authorization: str | None) -> Principal:
        if not self.configured:
            return Principal(ANONYMOUS, (), admin=True)  # --insecure or loopback only
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthenticated("send Authorization: Bearer <token>")
        credential = credential.strip()
        entry = self._token(credential)
        if entry is not None:
            return self._make(entry.subject, entry.scopes)
        if self._jwt_key is not None and credential.count(".") == 2:
            return self._from_jwt(credential)
        raise Unauthenticated("the bearer token is not known")

    def _token(self, credential: str) -> TokenEntry | None:
        digest = token_hash(credential)
        entry = self._tokens.get(digest)
        # The lookup is by hash; compare again in constant time all the same.
        if entry is not None and hmac.compare_digest(entry.digest, digest):
            return entry
        return None

    def _from_jwt(self, credential: str) -> Principal:
        try:
            claims = jwt.decode(
                credential,
                self._jwt_key,
                algorithms=self._jwt_algorithms,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer JWT does not verify: {exc}") from None
        scopes = claims.get("scopes")
        if not isinstance(scopes, list):
            scopes = str(claims.get("scope", "")).split()
        return self._make(str(claims["sub"]), tuple(str(scope) for scope in scopes))

    def _make(self, subject: str, scopes: tuple[str, ...]) -> Principal:
        return Principal(subject, scopes, admin=self.admin_scope in scopes)


def _public_key(text: str) -> tuple[Any, list[str]]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = text.encode() if text.strip().startswith("-----BEGIN") else Path(text).read_bytes()
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigurationError(f"SKILLQ_SERVER_JWT_PUBLIC_KEY is not a PEM key: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey):
        return key, ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key, ["ES256"]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, ["EdDSA"]
    raise ConfigurationError("SKILLQ_SERVER_JWT_PUBLIC_KEY must be an RSA, EC or Ed25519 key")
