"""Pure unit tests: the interface, skills, validation helpers and the error table."""

from __future__ import annotations

import asyncio
import enum
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from tasks import echo, stream_story, write_report
from tasks.basic import EchoArgs, ReportArgs, StoryArgs
from worker import (
    AgentEvent,
    ArtifactRef,
    CancelledByCaller,
    LocalRunContext,
    MissingScopes,
    NoAuth,
    SandboxUnavailable,
    ScopedAuth,
    skill,
)
from worker.core.errors import (
    ERROR_TABLE,
    ConfigurationError,
    InvalidArgs,
    InvalidArtifactName,
    JobFailed,
    JobNotFound,
    SecretNotFound,
    SkillqError,
    spec_for,
)
from worker.core.secrets import SecretScope, SecretSource, env_name
from worker.core.settings import Settings
from worker.interface.skills import SkillSet, load_skills
from worker.store.artifacts import FileArtifactStore, open_store, validate_name
from worker.store.events import encode_event
from worker.wire.schema_check import check_args


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_emit_helpers_produce_the_documented_payloads() -> None:
    ctx = LocalRunContext(auth=NoAuth())
    ref = ArtifactRef(name="a.txt", uri="memory://t/a.txt", mime_type="text/plain", size_bytes=3)

    async def go() -> None:
        await ctx.emit_progress("half")
        await ctx.emit_text_delta("tok")
        await ctx.emit_artifact(ref)
        await ctx.emit_error("oops", code="E1")

    run(go())
    assert ctx.events == [
        AgentEvent("progress", {"message": "half"}),
        AgentEvent("text_delta", {"text": "tok"}),
        AgentEvent(
            "artifact",
            {
                "name": "a.txt",
                "uri": "memory://t/a.txt",
                "mime_type": "text/plain",
                "size_bytes": 3,
            },
        ),
        AgentEvent("error", {"message": "oops", "code": "E1"}),
    ]


def test_require_scopes() -> None:
    ctx = LocalRunContext(auth=ScopedAuth(subject="ana", scopes=["a", "b"]))
    ctx.require_scopes(["a"])
    ctx.require_scopes([])
    with pytest.raises(MissingScopes) as caught:
        ctx.require_scopes(["a", "c", "d"])
    assert caught.value.missing == ("c", "d")
    assert str(caught.value) == "missing scopes: ['c', 'd']"
    with pytest.raises(MissingScopes):
        LocalRunContext(auth=NoAuth()).require_scopes(["a"])


def test_local_context_capabilities_and_cancel() -> None:
    ctx = LocalRunContext(auth=NoAuth(), secrets={"K": "v"})
    assert ctx.secret("K") == "v"
    with pytest.raises(KeyError, match="unknown secret"):
        ctx.secret("other")
    with pytest.raises(SandboxUnavailable):
        _ = ctx.sandbox
    with pytest.raises(PermissionError):
        _ = ctx.workspace
    with pytest.raises(PermissionError):
        _ = ctx.discover
    with pytest.raises(PermissionError):
        run(ctx.call("http://x", "s"))
    run(ctx.check_cancelled())
    ctx.cancel()
    with pytest.raises(CancelledByCaller):
        run(ctx.check_cancelled())


def test_bundled_skills_run_on_a_local_context() -> None:
    ctx = LocalRunContext(auth=NoAuth(), task_id="t1")
    assert run(echo(ctx, EchoArgs(message="x"))) == {"message": "x"}
    story = run(stream_story(ctx, StoryArgs(words=3, delay=0)))
    assert story.words == 3
    assert [e.kind for e in ctx.events].count("text_delta") == 3
    out = run(write_report(ctx, ReportArgs(title="T", lines=["l"])))
    assert ctx.artifacts["report.md"] == b"# T\n\nl\n"
    assert out["artifact"] == "memory://t1/report.md"


def test_skill_decorator_validates_and_describes() -> None:
    class Args(BaseModel):
        n: int

    @skill("count.v1", args=Args, scopes=["s"], tags=["t"], queue="q1")
    async def count(ctx: Any, args: Args) -> int:
        """Count things."""
        return args.n

    assert count.task_name == "skills.count.v1"
    described = count.describe()
    assert described["description"] == "Count things."
    assert described["queue"] == "q1"
    assert described["args_schema"]["required"] == ["n"]
    with pytest.raises(ConfigurationError, match="invalid skill name"):
        skill("bad name")
    with pytest.raises(ConfigurationError, match="time_limit"):
        skill("ok", time_limit=0)
    with pytest.raises(ConfigurationError, match="defined twice"):
        SkillSet([count, skill("count.v1")(_other)])


async def _other(ctx: Any, args: Any) -> None:
    return None


def test_load_skills_names_the_missing_module() -> None:
    with pytest.raises(ConfigurationError, match="no_such_module_xyz"):
        load_skills(["no_such_module_xyz"])
    loaded = load_skills(["tasks"])
    assert {"echo", "story", "report", "sleepy"} <= set(loaded)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "non-empty"),
        ("/etc/passwd", "relative"),
        ("../up", "'..'"),
        ("a/../../b", "'..'"),
        ("a//b", "empty"),
        ("./a", "'.'"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\\b", "relative"),
        ("C:evil", "relative"),
        ("x" * 1025, "1024"),
    ],
)
def test_hostile_artifact_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InvalidArtifactName, match=reason):
        validate_name(name)


def test_file_store_stays_inside_its_root(tmp_path: Path) -> None:
    store = FileArtifactStore(tmp_path / "root")
    ref = run(store.put("job-1", "dir/a.txt", b"abc", "text/plain"))
    assert run(store.get(ref.uri)) == b"abc"
    assert (tmp_path / "root" / "job-1" / "dir" / "a.txt").read_bytes() == b"abc"
    (tmp_path / "outside").write_text("secret")
    with pytest.raises(SkillqError):
        run(store.get((tmp_path / "outside").as_uri()))
    with pytest.raises(InvalidArtifactName):
        run(store.put("..", "a", b"x", "text/plain"))


def test_open_store_rejects_unknown_schemes() -> None:
    with pytest.raises(ConfigurationError, match="unsupported"):
        open_store(Settings(artifacts_url="ftp://x/y"))
    with pytest.raises(ConfigurationError, match="bucket"):
        open_store(Settings(artifacts_url="s3:///prefix"))


def test_secret_scope_enforces_declarations_and_redacts(tmp_path: Path) -> None:
    (tmp_path / "FILE_KEY").write_text("from-a-file-123\n")
    source = SecretSource({env_name("API-KEY"): 'se"cret-value'}, tmp_path)
    scope = SecretScope(source, "demo", ("API-KEY", "FILE_KEY", "MISSING"))
    assert scope.get("FILE_KEY") == "from-a-file-123"
    value = scope.get("API-KEY")
    with pytest.raises(SecretNotFound, match="not declared by skill 'demo'") as caught:
        scope.get("OTHER")
    assert "OTHER" in str(caught.value)
    with pytest.raises(SecretNotFound, match="SKILLQ_SECRET_MISSING"):
        scope.get("MISSING")
    import json

    encoded = json.dumps({"v": f"x {value} y", "f": "from-a-file-123"})
    assert value not in scope.redact(f"error: {value}")
    redacted = scope.redact(encoded)
    assert json.loads(redacted) == {"v": "x *** y", "f": "***"}


def test_event_encoding_checks_kind_payload_and_size() -> None:
    def same(text: str) -> str:
        return text

    tail, progress = encode_event("progress", {"message": "m"}, max_bytes=100, redact=same)
    envelope = json.loads('{"seq":1' + tail)
    assert (envelope["kind"], envelope["payload"], progress) == ("progress", {"message": "m"}, "m")
    assert isinstance(envelope["ts"], float)
    with pytest.raises(SkillqError, match="reserved"):
        encode_event("status", {}, max_bytes=100, redact=same)
    with pytest.raises(SkillqError, match="not JSON"):
        encode_event("x", {"v": object()}, max_bytes=100, redact=same)
    with pytest.raises(SkillqError, match="not JSON"):
        encode_event("x", {"v": float("nan")}, max_bytes=100, redact=same)
    with pytest.raises(SkillqError, match="limit"):
        encode_event("x", {"v": "a" * 200}, max_bytes=100, redact=same)
    with pytest.raises(SkillqError, match="invalid event kind"):
        encode_event("bad kind!", {}, max_bytes=100, redact=same)


class Inner(BaseModel):
    depth: int = Field(ge=0)


class Colour(enum.Enum):
    RED = "red"
    ONE = 1


class Outer(BaseModel):
    name: str = Field(max_length=8, pattern=r"^[a-z]+$")
    count: int = Field(default=1, ge=1, le=100)
    ratio: float = Field(default=0.5, gt=0, lt=1)
    flag: bool = False
    colour: Colour = Colour.RED
    mode: Literal["fast", "slow"] = "fast"
    inner: Inner | None = None
    tags: list[str] = Field(default=[], max_length=3)


CANDIDATES: list[dict[str, Any]] = [
    {"name": "x"},
    {"name": "x", "count": "5"},
    {"name": "x", "count": " 7 "},
    {"name": "x", "count": 5.0},
    {"name": "x", "count": True},
    {"name": "x", "count": "5.0"},
    {"name": "x", "ratio": "0.25"},
    {"name": "x", "flag": "yes"},
    {"name": "x", "flag": "off"},
    {"name": "x", "flag": 1},
    {"name": "x", "colour": "red"},
    {"name": "x", "colour": 1},
    {"name": "x", "inner": {"depth": "3"}},
    {"name": "x", "inner": None},
    {"name": "x", "extra": 1},
    {"name": "x", "tags": ["a", "b"]},
    {},
    {"name": "toolongname"},
    {"name": "UPPER"},
    {"name": "x", "count": "nope"},
    {"name": "x", "count": 0},
    {"name": "x", "count": "101"},
    {"name": "x", "count": 2.5},
    {"name": "x", "ratio": 1},
    {"name": "x", "flag": "maybe"},
    {"name": "x", "colour": "blue"},
    {"name": "x", "mode": "medium"},
    {"name": "x", "inner": {"depth": -1}},
    {"name": "x", "inner": {}},
    {"name": "x", "tags": ["a", "b", "c", "d"]},
    {"name": "x", "tags": {"a": 1}},
    {"name": {"a": 1}},
    {"name": 5},
]


def pydantic_accepts(args: dict[str, Any]) -> bool:
    try:
        Outer.model_validate(args)
    except ValueError:
        return False
    return True


# Refused by pydantic, but passed by the check, which leaves doubtful
# conversions to the worker rather than refuse something pydantic might take.
LEFT_TO_THE_WORKER: list[dict[str, Any]] = [{"name": "x", "colour": "1"}]


@pytest.mark.parametrize(
    "args",
    CANDIDATES + LEFT_TO_THE_WORKER,
    ids=[json.dumps(c) for c in CANDIDATES + LEFT_TO_THE_WORKER],
)
def test_schema_check_agrees_with_pydantic(args: dict[str, Any]) -> None:
    """Whatever pydantic accepts passes; what it refuses is refused, bar doubtful conversions."""
    found = check_args(args, Outer.model_json_schema())
    if pydantic_accepts(args) or args in LEFT_TO_THE_WORKER:
        assert found == []
    else:
        assert found, f"{args} passed the check but pydantic refuses it"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({}, "name: field required"),
        ({"name": "x", "count": "nope"}, "count: 'nope' is not of type 'integer'"),
        ({"name": "x", "count": 0}, "count: 0 is less than the minimum of 1"),
        ({"name": "x", "inner": {}}, "inner.depth: field required"),
        ({"name": "x", "tags": {"a": 1}}, "tags: {'a': 1} is not of type 'array'"),
        ({"name": "UPPER"}, "name: 'UPPER' does not match"),
        ({"name": "x", "mode": "medium"}, "mode: 'medium' is not one of"),
    ],
)
def test_schema_check_names_the_field(args: dict[str, Any], needle: str) -> None:
    assert needle in "; ".join(check_args(args, Outer.model_json_schema()))


def test_error_table_covers_every_error_and_walks_the_mro() -> None:
    import worker.core.errors as errors

    declared = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, SkillqError)
    ]
    assert set(declared) <= set(ERROR_TABLE)
    assert spec_for(JobNotFound("x")).exit_code == 4
    assert spec_for(InvalidArgs("s", "d")).exit_code == 2
    assert spec_for(TimeoutError()).exit_code == 5
    import redis

    assert spec_for(redis.ConnectionError("down")).exit_code == 6
    assert spec_for(MissingScopes(["a"])).http_status == 403
    assert spec_for(RuntimeError()).code == "handler_error"
    assert spec_for(JobNotFound("x")).a2a_code == -32001
    assert spec_for(InvalidArgs("s", "d")).a2a_code == -32602
    stored = JobFailed("j", "InvalidArgs", "m", "invalid_args")
    assert (spec_for(stored).exit_code, spec_for(stored).http_status) == (2, 422)
    codes = {spec.code for spec in ERROR_TABLE.values()}
    assert {"expired", "message_refused", "delivery_limit", "handler_aborted"} <= codes
    rebuilt = JobFailed(*JobFailed("j", "T", "m", "timeout").args)
    assert (rebuilt.job_id, rebuilt.error_type, rebuilt.error_message) == ("j", "T", "m")
    assert rebuilt.code == "timeout"
    assert str(SecretNotFound("K", "is missing")) == "secret 'K' is missing"


def test_settings_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLQ_BROKER_URL", "redis://example:6379/3")
    monkeypatch.setenv("SKILLQ_SKILLS", "a, b ,")
    settings = Settings()
    assert settings.effective_redis_url == "redis://example:6379/3"
    assert settings.effective_result_backend == "redis://example:6379/3"
    assert settings.skill_modules == ["a", "b"]
    assert settings.artifacts_url.startswith("file://")
    with pytest.raises(ValueError):
        Settings(key_prefix="a:b")


def test_worker_app_refuses_a_bad_artifacts_url() -> None:
    from worker.app import create_worker_app

    with pytest.raises(ConfigurationError, match="SKILLQ_ARTIFACTS_URL"):
        create_worker_app(Settings(artifacts_url="gopher://x"))


def test_a_skill_module_shadowed_by_the_working_directory_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.interface.skills import describe_sources

    skills = load_skills(["tasks"])
    (tmp_path / "tasks.py").write_text("# the user's own tasks module\n")
    monkeypatch.chdir(tmp_path)
    sources, warnings = describe_sources(skills, ["tasks"])
    assert any(line.startswith("skill 'echo' (skills.echo) from ") for line in sources)
    assert len(warnings) == 1
    assert str(tmp_path / "tasks.py") in warnings[0] and "rename one of them" in warnings[0]


def test_the_kombu_methods_skillq_overrides_are_the_ones_it_was_written_for() -> None:
    import hashlib
    import inspect

    from kombu.transport import redis as kombu_redis

    from worker.transport import OVERRIDDEN_KOMBU_SOURCES

    changed = []
    for dotted, digest in OVERRIDDEN_KOMBU_SOURCES.items():
        owner, method = dotted.split(".")
        source = inspect.getsource(getattr(getattr(kombu_redis, owner), method))
        if hashlib.sha256(source.encode()).hexdigest()[:16] != digest:
            changed.append(dotted)
    assert not changed, (
        f"kombu changed {changed}, which worker/transport.py overrides: compare the new "
        "source with the override, re-run tests/runtime/test_faults.py and "
        "tests/runtime/test_hostile.py, "
        "then update OVERRIDDEN_KOMBU_SOURCES"
    )


def test_pending_acknowledgements_lose_none_while_takes_and_the_keeper_race() -> None:
    # Acknowledgements come from pool threads while the consumer's takes and
    # the lease keeper both carry what is due; a tag sent twice is harmless
    # (the removals are idempotent), a tag never sent would come back with
    # its lease. Every tag must be sent, and the list must end empty.
    import threading

    from worker.runtime.acks import ACKS_PER_CALL, PendingAcks

    pending = PendingAcks()
    sent: list[str] = []
    lock = threading.Lock()
    added = [f"tag-{i}" for i in range(20_000)]

    def acknowledge(part: list[str]) -> None:
        for tag in part:
            pending.add(tag)

    def carry(stop: threading.Event) -> None:
        while not stop.is_set() or len(pending):
            tags = pending.due()
            assert len(tags) <= ACKS_PER_CALL
            with lock:
                sent.extend(tags)
            pending.done(tags)

    stop = threading.Event()
    carriers = [threading.Thread(target=carry, args=(stop,)) for _ in range(2)]
    producers = [threading.Thread(target=acknowledge, args=(added[i::4],)) for i in range(4)]
    for thread in carriers + producers:
        thread.start()
    for thread in producers:
        thread.join()
    stop.set()
    for thread in carriers:
        thread.join()
    assert set(sent) == set(added)
    assert len(pending) == 0 and pending.waited() is None
    assert not pending.arrived.is_set()
    pending.add("late")
    assert pending.arrived.is_set() and pending.due() == ["late"]


def test_a_signature_lives_at_least_its_ttl() -> None:
    # exp is whole seconds: rounding it down (from a rounded-down iat) took up
    # to two seconds off a signature, all of a short SKILLQ_AUTH_TTL past a
    # job's delay, and the delayed job failed "signed auth expired".
    from worker.wire.signing import sign, verify

    for moment in (100.0, 100.01, 100.99):
        auth = sign("k" * 32, "job", "echo", {"a": 1}, {}, 2.0, now=moment)
        assert auth["iat"] == 100 and auth["exp"] >= moment + 2.0
        verify("k" * 32, "job", "echo", {"a": 1}, auth, now=moment + 2.0)
