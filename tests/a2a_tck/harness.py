"""Run the A2A conformance kit (github.com/a2aproject/a2a-tck) against skillq.

The kit is not on PyPI and its source is not kept here: point
``SKILLQ_A2A_TCK_REPO`` at a clone of it (or a bare copy). Each pinned commit
is exported from that repository into ``build/a2a-tck/<commit>`` with a venv
of its own (the kit's dependencies from PyPI), so what the kit installs never
touches skillq's. Then one embedded Redis, one worker serving
:mod:`tests.a2a_tck.skills` and one ``skillq serve`` are started, and each kit
runs its own ``run_tck.py --category`` for the mandatory and capabilities
categories, with pytest's JSON report read back.

Two kits, two protocol versions on the one endpoint: the ``main`` branch (spec
1.0 method names, sent with ``A2A-Version: 1.0``) and the ``0.3.x`` branch
(0.3 method names and wire format, no ``A2A-Version`` header, which the spec
says means 0.3). A failure passes only when :data:`KIT_DEFECTS` names it: a
test of the kit's own making that the spec does not require, each listed in
docs/HTTP.md with the sentence of the spec that decides it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from worker.embedded import EmbeddedRedis, HttpServerProcess, WorkerProcess
from worker.server.principals import new_token, token_hash

ROOT = Path(__file__).resolve().parents[2]
REPO_ENV = "SKILLQ_A2A_TCK_REPO"
CACHE = ROOT / "build" / "a2a-tck"
CATEGORIES = ("mandatory", "capabilities")
CATEGORY_TIMEOUT = 1200  # seconds; a run takes about two minutes


@dataclass(frozen=True)
class Kit:
    """One pinned commit of the kit and the headers its requests carry."""

    version: str
    commit: str
    branch: str
    headers: dict[str, str] = field(default_factory=dict)
    open: bool = False  # the kit sends no credentials: run it against the open server


KITS = (
    # main sends credentials from A2A_AUTH_HEADERS, and no A2A-Version unless told to.
    Kit("1.0", "410ba92e1b264df895e1fe6eccfe22db7aeaab06", "main", {"A2A-Version": "1.0"}),
    # 0.3.x speaks 0.3 with no A2A-Version header, and has no way to send credentials.
    Kit("0.3", "eb1f804c27ea25db8805264d9ed2d7ca077a7776", "0.3.x", open=True),
)

# Failures that are the kit's own: "<version> <category> <pytest node id>" to
# the reason (docs/HTTP.md, "The A2A conformance kit", quotes the spec for each).
WORKING = "waits for WORKING after a blocking send, which returns at an end or at input-required"
SCHEME = "wants a security scheme with no field beyond 1.0's; the card also carries 0.3's"
LISTING = "tests/mandatory/protocol/test_tasks_list_method.py::"
KIT_DEFECTS: dict[str, str] = {
    **{
        f"1.0 mandatory {LISTING}{test}": WORKING
        for test in (
            "TestBasicListing::test_list_all_tasks",
            "TestBasicListing::test_list_tasks_validates_required_fields",
            "TestBasicListing::test_list_tasks_sorted_by_timestamp_descending",
            "TestFiltering::test_filter_by_context_id",
            "TestFiltering::test_filter_by_status",
            "TestFiltering::test_filter_by_last_updated_after",
            "TestFiltering::test_combined_filters",
            "TestPagination::test_custom_page_size",
            "TestPagination::test_page_token_navigation",
            "TestPagination::test_last_page_detection",
            "TestPagination::test_total_size_accuracy",
            "TestHistoryLimiting::test_history_length_zero",
            "TestHistoryLimiting::test_history_length_custom",
            "TestHistoryLimiting::test_history_length_exceeds_actual",
            "TestArtifactInclusion::test_artifacts_excluded_by_default",
            "TestArtifactInclusion::test_artifacts_included_when_requested",
            "TestEdgeCasesAndErrors::test_default_page_size_is_50",
        )
    },
    **{
        f"1.0 {node}": SCHEME
        for node in (
            "mandatory tests/mandatory/authentication/test_auth_compliance_v030.py"
            "::test_security_scheme_structure_compliance",
            "mandatory tests/mandatory/authentication/test_auth_enforcement.py"
            "::test_authentication_scheme_consistency",
            "mandatory tests/mandatory/security/test_agent_card_security.py"
            "::test_security_scheme_consistency",
            "capabilities tests/optional/capabilities/test_authentication.py"
            "::test_invalid_authentication",
        )
    },
    "1.0 mandatory tests/mandatory/jsonrpc/test_a2a_error_codes_enhanced.py"
    "::test_push_notification_not_supported_error_32003_enhanced": (
        "the kit calls its own helper with one argument too many (TypeError)"
    ),
    "1.0 mandatory tests/mandatory/security/test_agent_card_security.py"
    "::test_public_agent_card_access_control": (
        "fetches the card under the JSON-RPC URL, not the server's /.well-known/"
    ),
    "1.0 capabilities tests/optional/capabilities/test_streaming_methods.py"
    "::test_tasks_subscribe_nonexistent": (
        "takes a JSON-RPC error answered as application/json for a transport failure"
    ),
}


@dataclass
class Outcome:
    kit: Kit
    category: str
    counts: dict[str, int]
    failed: list[str]

    @property
    def unexpected(self) -> list[str]:
        return [node for node in self.failed if self.key(node) not in KIT_DEFECTS]

    def key(self, node: str) -> str:
        return f"{self.kit.version} {self.category} {node}"


def kit_repo() -> Path:
    where = os.environ.get(REPO_ENV)
    if not where:
        raise SystemExit(
            f"{REPO_ENV} must name a clone of https://github.com/a2aproject/a2a-tck "
            "(git clone https://github.com/a2aproject/a2a-tck); it is not on PyPI"
        )
    return Path(where).expanduser().resolve()


def prepare(kit: Kit, repo: Path) -> Path:
    """The kit's tree at its commit, with its venv in ``.venv``; made once."""
    target = CACHE / kit.commit
    ready = target / ".ready"
    if ready.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", kit.commit],
            stdout=archive,
            check=True,
        )
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(target, filter="data")
    subprocess.run([sys.executable, "-m", "venv", str(target / ".venv")], check=True)
    pip = [str(target / ".venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, str(target)], check=True)
    ready.write_text(kit.commit + "\n")
    return target


@dataclass(frozen=True)
class Sut:
    """Where a kit reaches skillq: the server's URL and the token it sends, if any."""

    url: str
    token: str | None


@contextmanager
def skillq(workdir: Path) -> Iterator[tuple[Sut, Sut]]:
    """A real Redis and worker, and two ``skillq serve`` in front of them: one that
    checks bearer tokens, and one on loopback that checks none (the 0.3 kit can
    send no credentials). URLs say ``localhost``, as a deployment's public URL
    would not be a bare loopback address (the kit flags 127.0.0.1 in a card)."""
    token = new_token()
    with EmbeddedRedis(directory=workdir / "redis") as redis:
        env = {
            "SKILLQ_BROKER_URL": redis.url,
            "SKILLQ_ARTIFACTS_URL": (workdir / "artifacts").as_uri(),
            "SKILLQ_SKILLS": "tests.a2a_tck.skills",
            "SKILLQ_SERVER_MAX_WAIT": "30",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        tokens = [{"sha256": token_hash(token), "subject": "tck", "scopes": []}]
        secured = {**env, "SKILLQ_SERVER_TOKENS": json.dumps(tokens)}
        worker = WorkerProcess(
            env,
            pool="threads",
            concurrency=8,
            queues="tck",
            loglevel="WARNING",
            log_path=workdir / "worker.log",
        ).start()
        try:
            worker.wait_ready(redis.url)
            with (
                HttpServerProcess(secured, log_path=workdir / "secured.log") as checked,
                HttpServerProcess(env, log_path=workdir / "open.log") as open_server,
            ):
                yield (
                    Sut(f"http://localhost:{checked.port}", token),
                    Sut(f"http://localhost:{open_server.port}", None),
                )
            if worker.process is None or worker.process.poll() is not None:
                # Every result after it would be the kit waiting on a dead worker.
                raise RuntimeError(f"the worker exited during the run:\n{worker.log_tail()}")
        finally:
            worker.stop(timeout=10)


def run(kit: Kit, tree: Path, category: str, sut: Sut, reports: Path) -> Outcome:
    report = reports / f"{kit.version}-{category}.json"
    report.unlink(missing_ok=True)
    headers = dict(kit.headers)
    if sut.token is not None:
        headers["Authorization"] = f"Bearer {sut.token}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SKILLQ_", "PYTEST_", "A2A_"))
    }
    env.update(
        {
            "A2A_AUTH_HEADERS": json.dumps(headers),
            "PYTEST_ADDOPTS": f"--json-report --json-report-file={report} -p no:cacheprovider",
            "VIRTUAL_ENV": str(tree / ".venv"),
            "PATH": os.pathsep.join([str(tree / ".venv" / "bin"), env.get("PATH", "")]),
        }
    )
    python = str(tree / ".venv" / "bin" / "python")
    command = [python, "run_tck.py", "--sut-url", sut.url + "/a2a/jsonrpc", "--category", category]
    with (reports / f"{kit.version}-{category}.log").open("w") as log:
        # A session of its own: run_tck.py starts pytest, and a timeout ends both.
        kit_run = subprocess.Popen(
            command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            kit_run.wait(timeout=CATEGORY_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(kit_run.pid, signal.SIGKILL)
            kit_run.wait()
            return Outcome(kit, category, {}, [f"(the whole category: over {CATEGORY_TIMEOUT} s)"])
    data = json.loads(report.read_text())
    counts = {key: value for key, value in data["summary"].items() if isinstance(value, int)}
    failed = [test["nodeid"] for test in data["tests"] if test["outcome"] in ("failed", "error")]
    return Outcome(kit, category, counts, sorted(failed))


def main() -> int:
    repo = kit_repo()
    reports = CACHE / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    trees = {kit.commit: prepare(kit, repo) for kit in KITS}
    outcomes: list[Outcome] = []
    workdir = Path(tempfile.mkdtemp(prefix="skillq-a2a-tck-"))
    try:
        with skillq(workdir) as (secured, open_server):
            for kit in KITS:
                sut = open_server if kit.open else secured
                for category in CATEGORIES:
                    outcomes.append(run(kit, trees[kit.commit], category, sut, reports))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bad = 0
    for outcome in outcomes:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items()))
        print(f"A2A {outcome.kit.version} ({outcome.kit.branch}) {outcome.category}: {shown}")
        for node in outcome.failed:
            reason = KIT_DEFECTS.get(outcome.key(node))
            print(
                f"  {'kit defect' if reason else 'FAILED'}: {node}"
                + (f" ({reason})" if reason else "")
            )
        bad += len(outcome.unexpected)
    seen = {outcome.key(node) for outcome in outcomes for node in outcome.failed}
    for stale in sorted(set(KIT_DEFECTS) - seen):  # a listed defect the kit no longer shows
        print(f"  listed as a kit defect but passed or not run: {stale}")
    print(f"reports and logs: {reports}")
    return 1 if bad else 0
