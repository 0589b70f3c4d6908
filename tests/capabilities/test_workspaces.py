"""Workspaces on real workers: grants minted by a client, verified by workers,
narrowed by delegation through ``ctx.call``, refused when forged, expired or
revoked, over the S3 store (moto's server).

Two agents: ``keeper`` (tests/ext/workspace_skills.py, one pool slot; its
children run inline) and ``archivist`` (tests/ext/workspace_remote_skills.py,
its own queue: calls to it are queued jobs that carry the grant).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from celery import Celery
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from tests.cli.test_cli import skillq
from tests.conftest import AUTH_KEY, BUCKET, wait_for
from worker.client import SkillClient
from worker.core.errors import InvalidGrant, JobNotFound
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.wire.signing import sign
from worker.workspace.grants import GrantSigner


@pytest.fixture(scope="module")
def ws_env(stack_env: dict[str, str]) -> dict[str, str]:
    assert stack_env["SKILLQ_GRANT_KEY"]  # every test worker can verify grants
    return stack_env


@pytest.fixture(scope="module", params=["prefork", "threads"])
def keepers(
    request: pytest.FixtureRequest,
    start_worker: Callable[..., WorkerProcess],
    ws_env: dict[str, str],
) -> Iterator[str]:
    keeper = start_worker(
        pool=request.param,
        concurrency=1,
        queues="workspace",
        env={**ws_env, "SKILLQ_SKILLS": "workspace_skills", "SKILLQ_AGENT": "keeper"},
    )
    archivist = start_worker(
        pool="threads",
        concurrency=2,
        queues="workspace-remote",
        env={**ws_env, "SKILLQ_SKILLS": "workspace_remote_skills", "SKILLQ_AGENT": "archivist"},
    )
    yield str(request.param)
    keeper.stop(timeout=10)
    archivist.stop(timeout=10)


@pytest.fixture(scope="module")
def ws_client(settings: Settings) -> Iterator[SkillClient]:
    with SkillClient(settings) as client:
        yield client


def new_workspace(client: SkillClient, files: dict[str, bytes]) -> str:
    """A fresh workspace holding ``files``, put there with a full grant."""
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    admin = client.workspace(client.workspace_grant(workspace, ["read:", "write:"], ttl=600))
    for path, data in files.items():
        admin.write(path, data)
    return workspace


def files_of(client: SkillClient, workspace: str) -> list[str]:
    return client.workspace(client.workspace_grant(workspace, ["read:"], ttl=60)).list()


def finished(client: SkillClient, job: str) -> bool:
    try:
        return client.status(job).finished
    except JobNotFound:
        return False  # sent by a plain producer: recorded when a worker takes it


def failure(client: SkillClient, job: str) -> tuple[str, str]:
    """The error code and message of a job that must fail."""
    wait_for(lambda: finished(client, job), timeout=60)
    status = client.status(job)
    assert status.state == "failed", status
    assert status.error is not None
    return status.error.code, status.error.message


def test_a_granted_skill_reads_writes_and_is_refused_outside(
    keepers: str, ws_client: SkillClient, s3: Any
) -> None:
    ws = new_workspace(ws_client, {"in/data.txt": b"hello"})
    other = new_workspace(ws_client, {"in/data.txt": b"other data"})
    grant = ws_client.workspace_grant(ws, ["read:", "write:out/"])
    out = ws_client.result(ws_client.submit("ws_report", grant=grant), timeout=60)
    assert out["read"] == "hello"
    assert out["listing"] == ["in/data.txt", "out/result.txt"]
    assert "'secrets.txt'" in out["write_outside"]
    assert "(read:, write:out/)" in out["write_outside"]
    assert out["write_outside"].startswith("WorkspaceDenied")
    assert "'..'" in out["escape"]
    assert "percent escape" in out["encoded_escape"]
    assert "must be relative" in out["absolute"]
    # What was refused touched nothing; what was allowed is where the layout says.
    assert files_of(ws_client, ws) == ["in/data.txt", "out/result.txt"]
    assert files_of(ws_client, other) == ["in/data.txt"]
    stored = s3.get_object(Bucket=BUCKET, Key=f"artifacts/workspaces/{ws}/out/result.txt")
    assert stored["Body"].read() == b"HELLO"
    # A grant for the other workspace reaches that one and nothing of the first.
    elsewhere = ws_client.workspace_grant(other, ["read:", "write:out/"])
    out = ws_client.result(ws_client.submit("ws_report", grant=elsewhere), timeout=60)
    assert out["read"] == "other data" and out["listing"] == ["in/data.txt", "out/result.txt"]
    assert ws_client.workspace(grant).read("out/result.txt") == b"HELLO"


@pytest.mark.parametrize(
    ("agent", "callee"), [("keeper", "ws_reader"), ("archivist", "ws_remote_reader")]
)
def test_a_delegated_grant_lets_the_callee_read_its_prefix_and_nothing_else(
    keepers: str, ws_client: SkillClient, agent: str, callee: str
) -> None:
    ws = new_workspace(ws_client, {"in/data.txt": b"input", "out/result.txt": b"private"})
    grant = ws_client.workspace_grant(ws, ["read:", "write:out/"])
    job = ws_client.submit("ws_delegate", {"agent": agent, "skill": callee}, grant=grant)
    out = ws_client.result(job, timeout=90)
    assert out["wider"].startswith("WorkspaceDenied: cannot delegate write:"), out
    assert out["ok"], out
    child = out["child"]
    assert child["read"] == "input"
    assert "'out/result.txt'" in child["read_outside"] and "(read:in/)" in child["read_outside"]
    if callee == "ws_reader":
        assert child["listing"] == ["in/data.txt"]
        assert "write of 'in/new.txt'" in child["write"]
        assert "needs a read scope" in child["list_outside"]
    assert ws_client.status(out["task_id"]).parent == job
    assert files_of(ws_client, ws) == ["in/data.txt", "out/result.txt"]


def test_a_skill_without_workspace_access_gets_no_workspace(
    keepers: str, ws_client: SkillClient, producer: Celery
) -> None:
    said = ws_client.result(ws_client.submit("ws_plain"), timeout=60)
    assert "does not declare workspace access" in said and "workspace_access=True" in said
    ws = new_workspace(ws_client, {})
    grant = ws_client.workspace_grant(ws, ["read:"])
    with pytest.raises(InvalidGrant, match="does not declare workspace_access"):
        ws_client.submit("ws_plain", grant=grant)
    # A producer that does not ask the registry: the worker refuses it.
    job = str(uuid.uuid4())
    auth = sign(AUTH_KEY, job, "ws_plain", {}, {}, 60, grant=grant)
    producer.send_task(
        "skills.ws_plain",
        kwargs={"args": {}, "auth": auth, "grant": grant},
        task_id=job,
        queue="workspace",
    )
    code, message = failure(ws_client, job)
    assert code == "invalid_grant" and "does not declare workspace_access" in message


def test_the_call_signature_covers_the_grant(
    keepers: str, ws_client: SkillClient, producer: Celery
) -> None:
    """A grant cannot be added to, or swapped in, a signed call."""
    ws = new_workspace(ws_client, {"in/data.txt": b"x"})
    mine = ws_client.workspace_grant(ws, ["read:in/"])
    wider = ws_client.workspace_grant(ws, ["read:", "write:"])
    for signed_with, sent in [(mine, wider), (None, mine)]:
        job = str(uuid.uuid4())
        auth = sign(AUTH_KEY, job, "ws_report", {}, {}, 60, grant=signed_with)
        producer.send_task(
            "skills.ws_report",
            kwargs={"args": {}, "auth": auth, "grant": sent},
            task_id=job,
            queue="workspace",
        )
        code, message = failure(ws_client, job)
        assert code == "invalid_auth" and "workspace grant" in message
    assert files_of(ws_client, ws) == ["in/data.txt"]


def test_forged_expired_and_revoked_grants_fail_the_job_before_it_runs(
    keepers: str, ws_client: SkillClient, ws_env: dict[str, str]
) -> None:
    ws = new_workspace(ws_client, {"in/data.txt": b"x"})
    forger = GrantSigner(
        algorithm="HS256",
        signing_key=secrets.token_bytes(32),
        verifying_key=b"",
        max_ttl=3600,
    )
    forged = forger.mint(ws, ["read:", "write:"], ttl=600)
    real = ws_client.workspace_grant(ws, ["read:in/"], ttl=600)
    header, _, signature = real.split(".")
    claims = jwt.decode(real, options={"verify_signature": False})
    claims["scp"] = ["read:", "write:"]
    body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    widened = f"{header}.{body}.{signature}"
    short = ws_client.workspace_grant(ws, ["read:", "write:out/"], ttl=1)
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    revoked = ws_client.workspace_grant(ws, ["read:", "write:out/"], ttl=600)
    revoked_id = jwt.decode(revoked, options={"verify_signature": False})["jti"]
    done = skillq(ws_env, "workspace", "revoke", revoked_id)
    assert done.returncode == 0 and revoked_id in done.stdout, done.stderr
    parent = ws_client.workspace_grant(ws, ["read:", "write:out/"], ttl=600)
    delegate = ws_client.workspace(parent).delegate(["read:in/"], ttl=60)
    ws_client.revoke_grant(parent)
    wait_for(lambda: time.time() > expires, timeout=10)
    cases = {
        "forged": (forged, "does not verify"),
        "widened": (widened, "does not verify"),
        "expired": (short, "expired"),
        "revoked": (revoked, "revoked"),
        "delegated from a revoked grant": (delegate, "revoked"),
        "not a token": ("not-a-token", "not a valid token"),
    }
    for name, (grant, reason) in cases.items():
        code, message = failure(ws_client, ws_client.submit("ws_report", grant=grant))
        assert code == "invalid_grant", (name, code, message)
        assert message.startswith("workspace grant refused:") and reason in message, (name, message)
    assert files_of(ws_client, ws) == ["in/data.txt"]  # no handler ran


def test_revoking_a_grant_reaches_a_job_that_is_running(
    keepers: str, ws_client: SkillClient
) -> None:
    ws = new_workspace(ws_client, {"in/data.txt": b"x"})
    grant = ws_client.workspace_grant(ws, ["read:in/"])
    job = ws_client.submit("ws_poll", grant=grant)
    wait_for(lambda: int((ws_client.status(job).progress or "read 0")[5:]) >= 3, timeout=60)
    ws_client.revoke_grant(grant)
    code, message = failure(ws_client, job)
    assert code == "invalid_grant" and "revoked" in message


def test_the_cli_mints_inspects_uses_and_revokes_grants(
    keepers: str, ws_env: dict[str, str], tmp_path: Any
) -> None:
    ws = f"ws-{uuid.uuid4().hex[:10]}"
    minted = skillq(
        ws_env,
        "workspace",
        "grant",
        ws,
        "--scope",
        "read:",
        "--scope",
        "write:",
        "--ttl",
        "600",
        "--json",
    )
    assert minted.returncode == 0, minted.stderr
    admin = json.loads(minted.stdout)
    assert admin["workspace"] == ws and admin["scopes"] == ["read:", "write:"]
    source = tmp_path / "data.txt"
    source.write_bytes(b"from the cli")
    put = skillq(ws_env, "workspace", "put", admin["token"], "in/data.txt", str(source))
    assert put.returncode == 0, put.stderr
    job_grant = skillq(ws_env, "workspace", "grant", ws, "-s", "read:", "-s", "write:out/")
    token = job_grant.stdout.strip()
    done = skillq(ws_env, "submit", "ws_report", "--grant", token, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["read"] == "from the cli"
    got = skillq(ws_env, "workspace", "get", token, "out/result.txt")
    assert got.returncode == 0 and got.stdout == "FROM THE CLI"
    listed = skillq(ws_env, "workspace", "ls", token, "--json")
    assert json.loads(listed.stdout) == ["in/data.txt", "out/result.txt"]
    refused = skillq(ws_env, "workspace", "put", token, "secrets.txt", str(source))
    assert refused.returncode == 2 and "outside this grant's scopes" in refused.stderr
    shown = skillq(ws_env, "workspace", "inspect", token, "--json")
    assert json.loads(shown.stdout)["scopes"] == ["read:", "write:out/"]
    assert skillq(ws_env, "workspace", "revoke", token).returncode == 0
    gone = skillq(ws_env, "workspace", "inspect", token)
    assert gone.returncode == 2 and "revoked" in gone.stderr
    unkeyed = {k: v for k, v in ws_env.items() if k != "SKILLQ_GRANT_KEY"}
    nokey = skillq(unkeyed, "workspace", "grant", ws, "-s", "read:")
    assert nokey.returncode == 2 and "SKILLQ_GRANT_KEY" in nokey.stderr


def test_key_pair_grants_on_separate_databases_and_a_file_store(
    start_worker: Callable[..., WorkerProcess],
    stack_env: dict[str, str],
    redis_server: Any,
    tmp_path: Path,
) -> None:
    """Workers that hold only the public key verify grants and cannot delegate;
    broker, results and skillq's records on three databases; files on disk."""
    private = Ed25519PrivateKey.generate()
    public_file = tmp_path / "grants.pub"
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    base = redis_server.url.rsplit("/", 1)[0]
    store = tmp_path / "store"
    layout = {
        "SKILLQ_BROKER_URL": f"{base}/5",
        "SKILLQ_RESULT_BACKEND": f"{base}/4",
        "SKILLQ_REDIS_URL": f"{base}/3",
        "SKILLQ_KEY_PREFIX": "wsalt",
        "SKILLQ_ARTIFACTS_URL": store.as_uri(),
    }
    verifier = start_worker(
        pool="threads",
        concurrency=2,
        queues="workspace",
        env={
            **layout,
            "SKILLQ_SKILLS": "workspace_skills",
            "SKILLQ_AGENT": "keeper",
            "SKILLQ_GRANT_PUBLIC_KEY": str(public_file),
            "SKILLQ_GRANT_KEY": "",  # the suite's shared key: empty is unset
        },
        ready_url=f"{base}/3",
        ready_prefix="wsalt",
    )
    settings = Settings(
        broker_url=layout["SKILLQ_BROKER_URL"],
        result_backend=layout["SKILLQ_RESULT_BACKEND"],
        redis_url=layout["SKILLQ_REDIS_URL"],
        key_prefix="wsalt",
        artifacts_url=layout["SKILLQ_ARTIFACTS_URL"],
        auth_key=SecretStr(AUTH_KEY),
        grant_private_key=SecretStr(private_pem),
    )
    try:
        with SkillClient(settings) as client:
            ws = new_workspace(client, {"in/data.txt": b"on disk"})
            grant = client.workspace_grant(ws, ["read:", "write:out/"])
            assert client.result(client.submit("ws_report", grant=grant), timeout=60)["read"] == (
                "on disk"
            )
            assert (store / "workspaces" / ws / "out" / "result.txt").read_bytes() == b"ON DISK"
            code, message = failure(client, client.submit("ws_delegate", grant=grant))
            assert code == "configuration" and "verify grants but not mint them" in message
            client.revoke_grant(grant)
            code, message = failure(client, client.submit("ws_report", grant=grant))
            assert code == "invalid_grant" and "revoked" in message
    finally:
        verifier.stop(timeout=10)
