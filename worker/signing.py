"""Signed caller identity: HMAC-SHA256 over job id, skill, claims and expiry.

With ``SKILLQ_AUTH_KEY`` set, clients send ``auth`` as
``{"claims": {...}, "exp": <unix seconds>, "sig": <hex>}`` and workers
refuse a job whose auth is missing, forged, signed for another job or skill,
or expired. The job id is inside the signature, so a captured auth cannot be
replayed on a new job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from .errors import InvalidAuth


def _message(job_id: str, skill: str, claims: dict[str, Any], exp: int) -> bytes:
    return json.dumps(
        [job_id, skill, claims, exp], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def sign(
    key: str, job_id: str, skill: str, claims: dict[str, Any], ttl: float, now: float | None = None
) -> dict[str, Any]:
    exp = int((time.time() if now is None else now) + ttl)
    digest = hmac.new(key.encode(), _message(job_id, skill, claims, exp), hashlib.sha256)
    return {"claims": claims, "exp": exp, "sig": digest.hexdigest()}


def verify(
    key: str, job_id: str, skill: str, auth: Any, now: float | None = None
) -> dict[str, Any]:
    """The signed claims, or :class:`InvalidAuth` saying what is wrong (never the key)."""
    if not isinstance(auth, dict) or not {"claims", "exp", "sig"} <= set(auth):
        raise InvalidAuth(skill, "signed auth required: this worker has SKILLQ_AUTH_KEY set")
    claims, exp, sig = auth["claims"], auth["exp"], auth["sig"]
    if not isinstance(claims, dict) or not isinstance(exp, int) or not isinstance(sig, str):
        raise InvalidAuth(skill, "signed auth is malformed")
    expected = hmac.new(key.encode(), _message(job_id, skill, claims, exp), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), sig):
        raise InvalidAuth(skill, "auth signature does not match this job, skill and claims")
    if exp < (time.time() if now is None else now):
        raise InvalidAuth(skill, f"signed auth expired at {exp}")
    return claims
