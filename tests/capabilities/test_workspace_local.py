"""Workspaces and the sandbox without Redis or workers: the skills of
tests/ext/workspace_skills.py and sandbox_skills.py, unchanged, on
``LocalRunContext``; and the grant rules themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from tests.ext import sandbox_skills, workspace_skills
from worker import (
    InvalidGrant,
    LocalCaller,
    LocalRunContext,
    LocalWorkspaces,
    NoAuth,
    SandboxUnavailable,
    Skill,
    WorkspaceDenied,
    local_sandbox,
)
from worker.core.errors import ConfigurationError, InvalidWorkspacePath, spec_for
from worker.core.settings import Settings
from worker.wire.submission import shown_kwargs
from worker.workspace.grants import GrantSigner, Scope, check_path, grant_id_of

SKILLS = [
    workspace_skills.ws_report,
    workspace_skills.ws_delegate,
    workspace_skills.ws_reader,
    workspace_skills.ws_plain,
    workspace_skills.ws_poll,
]


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def run(skill: Skill, ctx: LocalRunContext[Any], args: Any) -> Any:
    """Call a skill's handler on a local context, to its end."""
    return asyncio.run(_awaited(skill(ctx, args)))


def context(workspaces: LocalWorkspaces, grant: str | None) -> LocalRunContext[Any]:
    return LocalRunContext(
        auth=NoAuth(),
        workspace=None if grant is None else workspaces.open(grant),
        a2a=LocalCaller(SKILLS, agents={"keeper": [s.name for s in SKILLS]}, workspaces=workspaces),
    )


@pytest.fixture(params=["dict", "directory"])
def workspaces(request: pytest.FixtureRequest, tmp_path: Path) -> LocalWorkspaces:
    found = LocalWorkspaces() if request.param == "dict" else LocalWorkspaces(tmp_path)
    asyncio.run(found.put("w1", "in/data.txt", b"hello"))
    asyncio.run(found.put("w2", "in/data.txt", b"other"))
    return found


def test_the_report_skill_runs_the_same_locally(workspaces: LocalWorkspaces) -> None:
    grant = workspaces.grant("w1", ["read:", "write:out/"])
    out = run(workspace_skills.ws_report, context(workspaces, grant), {})
    assert out["read"] == "hello"
    assert out["listing"] == ["in/data.txt", "out/result.txt"]
    assert "'secrets.txt'" in out["write_outside"] and "(read:, write:out/)" in out["write_outside"]
    assert "'..'" in out["escape"] and "percent escape" in out["encoded_escape"]
    assert asyncio.run(workspaces.get("w1", "out/result.txt")) == b"HELLO"
    assert asyncio.run(workspaces.store.list("w1", "")) == ["in/data.txt", "out/result.txt"]
    assert asyncio.run(workspaces.store.list("w2", "")) == ["in/data.txt"]


def test_delegation_through_a_local_call_narrows(workspaces: LocalWorkspaces) -> None:
    grant = workspaces.grant("w1", ["read:", "write:out/"])
    out = run(workspace_skills.ws_delegate, context(workspaces, grant), {})
    assert out["ok"] and out["wider"].startswith("WorkspaceDenied: cannot delegate write:")
    child = out["child"]
    assert child["listing"] == ["in/data.txt"] and child["read"] == "hello"
    assert "(read:in/)" in child["read_outside"] and "write of 'in/new.txt'" in child["write"]


def test_a_skill_without_access_or_grant_gets_no_workspace(workspaces: LocalWorkspaces) -> None:
    said = run(workspace_skills.ws_plain, context(workspaces, None), {})
    assert "did not declare workspace access" in said
    grant = workspaces.grant("w1", ["read:"])
    caller = LocalCaller(SKILLS, workspaces=workspaces)
    refused = asyncio.run(caller.call("local", "ws_plain", grant=grant))
    assert not refused.ok and "does not declare workspace_access" in str(refused.error)


def test_revoked_expired_and_foreign_grants_are_refused(workspaces: LocalWorkspaces) -> None:
    stranger = LocalWorkspaces().grant("w1", ["read:"])
    with pytest.raises(InvalidGrant, match="does not verify"):
        workspaces.open(stranger)
    old = workspaces.signer.mint("w1", ["read:"], ttl=10, now=time.time() - 60)
    with pytest.raises(InvalidGrant, match="expired"):
        workspaces.open(old)
    grant = workspaces.grant("w1", ["read:in/"])
    ctx = context(workspaces, grant)
    delegate = asyncio.run(ctx.workspace.delegate(["read:in/"]))
    workspaces.revoke(grant_id_of(grant))
    with pytest.raises(InvalidGrant, match="revoked"):
        run(workspace_skills.ws_poll, ctx, {"limit": 3})
    with pytest.raises(InvalidGrant, match="revoked"):
        workspaces.open(delegate)


def test_the_sandbox_skill_runs_the_same_locally() -> None:
    sandbox = local_sandbox(Settings(sandbox="bwrap"))
    assert sandbox is not None  # bwrap is installed by `make test`
    ctx: LocalRunContext[Any] = LocalRunContext(auth=NoAuth(), sandbox=sandbox)
    args = sandbox_skills.Code(code="print(1+1)")
    out = run(sandbox_skills.sandbox_run, ctx, args)
    assert out["stdout"] == "2\n" and out["exit_code"] == 0
    with pytest.raises(SandboxUnavailable):
        run(sandbox_skills.sandbox_run, LocalRunContext(auth=NoAuth()), args)
    with pytest.raises(ValueError, match="not 'cobol'"):
        asyncio.run(sandbox.run("x", language="cobol"))
    with pytest.raises(ValueError, match="SKILLQ_SANDBOX_MAX_TIMEOUT"):
        asyncio.run(sandbox.run("x", timeout=10_000))
    with pytest.raises(ValueError, match=r"'\.\.'"):
        asyncio.run(sandbox.run("x", files={"../escape": b""}))


# --- the grant rules ---


def signer(**keys: str) -> GrantSigner:
    values = cast(dict[str, Any], {k: SecretStr(v) for k, v in keys.items()})
    found = GrantSigner.from_settings(Settings(**values))
    assert found is not None
    return found


def test_scopes_are_prefixes_and_delegation_only_narrows() -> None:
    hs = signer(grant_key="k" * 32)
    root = hs.verify(hs.mint("w", ["read:", "write:out/"], ttl=600))
    assert root.allows("read", "anything/at/all") and root.allows("write", "out/x")
    assert not root.allows("write", "outbox") and not root.allows("write", "x")
    child = hs.verify(hs.mint("w", ["read:in/", "write:out/a/"], ttl=60, parent=root))
    assert child.chain == (root.id,) and child.lineage == (root.id, child.id)
    for wider in (["write:"], ["write:o"], ["read:", "write:in/"]):
        with pytest.raises(WorkspaceDenied, match="only narrows"):
            hs.mint("w", wider, ttl=60, parent=root)
    with pytest.raises(WorkspaceDenied, match="ends no later"):
        hs.mint("w", ["read:"], ttl=6000, parent=root)
    with pytest.raises(WorkspaceDenied, match="same workspace"):
        hs.mint("other", ["read:"], ttl=60, parent=root)
    assert Scope.parse("write:out/").contains(Scope.parse("write:out/deep/"))
    for bad in ("rw:x", "read", "read:../x", "write:/abs", "read:a%2fb", "execute:"):
        with pytest.raises(InvalidGrant):
            Scope.parse(bad)
    with pytest.raises(InvalidGrant, match="SKILLQ_GRANT_MAX_TTL"):
        hs.mint("w", ["read:"], ttl=30 * 86400)
    with pytest.raises(InvalidGrant, match="workspace id"):
        hs.mint("../w", ["read:"], ttl=60)


def test_paths_follow_the_artifact_name_rules_plus_no_escapes() -> None:
    assert check_path("out/result.txt") == "out/result.txt"
    for bad in (
        "",
        "/etc/passwd",
        "a/../b",
        "a//b",
        "./a",
        "a\\b",
        "a\x00b",
        "a\nb",
        "%2e%2e/x",
        "C:/x",
        "x" * 2000,
    ):
        with pytest.raises(InvalidWorkspacePath):
            check_path(bad)
    assert spec_for(InvalidWorkspacePath("x", "y")).code == "invalid_workspace_path"
    assert spec_for(InvalidGrant("x")).http_status == 403
    assert isinstance(WorkspaceDenied("x"), PermissionError)


def test_tokens_that_are_not_ours_are_refused() -> None:
    hs = signer(grant_key="k" * 32)
    real = hs.mint("w", ["read:"], ttl=600)
    claims = jwt.decode(real, options={"verify_signature": False})
    unsigned = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(InvalidGrant, match="not a valid token"):
        hs.verify(unsigned)
    wrong_audience = jwt.encode({**claims, "aud": "elsewhere"}, "k" * 32, algorithm="HS256")
    with pytest.raises(InvalidGrant, match="not a valid token"):
        hs.verify(wrong_audience)
    missing_id = jwt.encode({k: v for k, v in claims.items() if k != "jti"}, "k" * 32, "HS256")
    with pytest.raises(InvalidGrant):
        hs.verify(missing_id)
    with pytest.raises(InvalidGrant, match="at most"):
        hs.verify("x" * 10_000)
    assert grant_id_of(real) == claims["jti"] and grant_id_of(claims["jti"]) == claims["jti"]
    with pytest.raises(InvalidGrant):
        grant_id_of("not a grant")


def test_ed25519_key_pairs_verify_and_only_the_private_key_mints(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_file = tmp_path / "grant.pub"
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    minter = signer(grant_private_key=pem)
    checker = signer(grant_public_key=str(public_file))
    token = minter.mint("w", ["read:"], ttl=60)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert checker.verify(token).workspace == "w"
    with pytest.raises(ConfigurationError, match="verify grants but not mint"):
        checker.mint("w", ["read:"], ttl=60)
    # Algorithm confusion: an HS256 token keyed with the public key is refused.
    confused = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        public_file.read_bytes()[:32],
        algorithm="HS256",
    )
    with pytest.raises(InvalidGrant):
        checker.verify(confused)
    with pytest.raises(ConfigurationError, match="not both"):
        GrantSigner.from_settings(
            Settings(grant_key=SecretStr("k" * 32), grant_public_key=SecretStr(str(public_file)))
        )
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        GrantSigner.from_settings(Settings(grant_key=SecretStr("short")))
    assert GrantSigner.from_settings(Settings()) is None


def test_grants_never_show_in_the_kwargs_celery_displays() -> None:
    shown = shown_kwargs({"args": {"a": 1}, "grant": "secret.token.value"})
    assert "secret.token.value" not in shown and "<workspace grant>" in shown
    assert shown_kwargs({"args": {}}) == "{'args': {}}"
