"""A message's kwargs, checked before anything runs: the args against the skill's
model, the grant, concurrency key and time limit, and the signature that
covers them all. What a producer sent wrong fails the job with a reason here
(``InvalidArgs``, ``InvalidAuth``, ``InvalidGrant``), never the handler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.errors import InvalidArgs, InvalidAuth, InvalidGrant
from ..interface.skills import AnyArgs, Skill
from ..store.events import dumps
from ..wire.envelope import nesting_depth_over
from ..wire.signing import SignedCall, verify
from ..wire.submit_checks import finite_number, printable, signed_options
from ..workspace.grants import MAX_TOKEN_BYTES
from .limiter import concurrency_key_of

CALL_KEYS = frozenset({"args", "auth", "grant", "concurrency_key", "time_limit"})


@dataclass(frozen=True)
class Call:
    """A message body, validated: what the handler gets and who vouches for it."""

    args: BaseModel | dict[str, Any]
    auth: BaseModel
    signed: SignedCall | None = None
    claims: dict[str, Any] = field(default_factory=dict)  # as verified: what children inherit
    grant: str | None = None  # a workspace grant token, verified when the context is built
    time_limit: float | None = None  # the skill's, or the submit's when that is shorter


def describe_validation(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_call(
    skill: Skill,
    positional: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    max_bytes: int,
    *,
    max_depth: int = 64,
    job_id: str = "",
    auth_key: str | None = None,
) -> Call:
    """Validate a message body against the skill's args and auth models.

    With ``auth_key``, claims count only if signed, and the signature must
    cover these args; a call without auth runs anonymously unless the skill
    declares scopes.
    """
    shape = "send kwargs={'args': {...}, 'auth': {...}}"
    if positional:
        raise InvalidArgs(skill.name, f"positional arguments are not accepted; {shape}")
    unknown = set(kwargs) - CALL_KEYS
    if unknown:
        raise InvalidArgs(skill.name, f"unexpected keys {sorted(unknown)}; {shape}")
    raw_args = kwargs.get("args")
    raw_args = {} if raw_args is None else raw_args
    if not isinstance(raw_args, dict):
        raise InvalidArgs(skill.name, f"args must be a JSON object, not {type(raw_args).__name__}")
    if nesting_depth_over(raw_args, max_depth):
        # Checked iteratively first: the JSON encoder, pydantic and pickling
        # (prefork hands args to its children pickled) would exhaust the stack.
        raise InvalidArgs(
            skill.name, f"args nest deeper than {max_depth} levels (SKILLQ_MAX_ARGS_DEPTH)"
        )
    try:
        size = len(dumps(raw_args).encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgs(skill.name, f"args are not JSON: {exc}") from exc
    if size > max_bytes:
        raise InvalidArgs(skill.name, f"args are {size} bytes, over the {max_bytes}-byte limit")
    try:
        # Without an args model the handler gets the JSON object itself.
        args = raw_args if skill.args is AnyArgs else skill.args.model_validate(raw_args)
    except ValidationError as exc:
        details = [dict(item) for item in exc.errors(include_url=False, include_input=False)]
        raise InvalidArgs(skill.name, describe_validation(exc), details) from exc
    grant = kwargs.get("grant")
    if grant is not None and not (isinstance(grant, str) and 0 < len(grant) <= MAX_TOKEN_BYTES):
        raise InvalidGrant(f"a grant must be a token string of at most {MAX_TOKEN_BYTES} bytes")
    key = kwargs.get("concurrency_key")
    if key is not None and (key != concurrency_key_of(kwargs) or not printable(key, 256)):
        raise InvalidArgs(skill.name, "a concurrency key is 1 to 256 printable characters")
    given_limit = kwargs.get("time_limit")
    if given_limit is not None and (not finite_number(given_limit) or not given_limit > 0):
        raise InvalidArgs(skill.name, "a time limit is a positive number of seconds")
    raw_auth = kwargs.get("auth")
    if raw_auth is not None and not isinstance(raw_auth, dict):
        raise InvalidAuth(skill.name, "auth must be a JSON object")
    signed = None
    bound = grant is not None or key is not None or given_limit is not None
    if auth_key is not None and (raw_auth is not None or skill.scopes or bound):
        signed = verify(
            auth_key,
            job_id,
            skill.name,
            raw_args,
            raw_auth,
            grant=grant,
            options=signed_options(key, given_limit),
        )
        raw_auth = signed.claims
    raw_auth = {} if raw_auth is None else raw_auth
    if not isinstance(raw_auth, dict):
        raise InvalidAuth(skill.name, "auth must be a JSON object")
    try:
        auth = skill.auth.model_validate(raw_auth)
    except ValidationError as exc:
        raise InvalidAuth(skill.name, describe_validation(exc)) from exc
    limits = [float(limit) for limit in (skill.time_limit, given_limit) if limit is not None]
    return Call(args, auth, signed, raw_auth, grant, min(limits) if limits else None)
