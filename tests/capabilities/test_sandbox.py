"""``ctx.sandbox`` on real workers with the real bubblewrap: what sandboxed code
can and cannot do, the limits that stop it, and that the worker keeps serving.

Code comes in as job args (tests/ext/sandbox_skills.py), the way untrusted
code reaches a skill in production.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUTH_KEY, AWS, SECRET_VALUE, wait_for
from worker.client import SkillClient
from worker.embedded import EmbeddedRedis, WorkerProcess

SANDBOX_UIDS = range(200_000, 260_000)  # the user ids a root worker runs sandboxes as


@pytest.fixture(scope="module", params=["prefork", "threads"])
def coder(
    request: pytest.FixtureRequest, start_worker: Callable[..., WorkerProcess]
) -> Iterator[WorkerProcess]:
    process = start_worker(
        pool=request.param,
        concurrency=2,
        queues="sandbox",
        env={"SKILLQ_SKILLS": "sandbox_skills", "SKILLQ_AGENT": "coder", "SKILLQ_SANDBOX": "bwrap"},
    )
    yield process
    process.stop(timeout=10)


def run(client: SkillClient, code: str, **options: Any) -> dict[str, Any]:
    job = client.submit("sandbox_run", {"code": code, **options})
    result: dict[str, Any] = client.result(job, timeout=120)
    return result


def sandbox_processes() -> list[int]:
    """Processes of any sandbox user still alive on this host."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in SANDBOX_UIDS:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_code_runs_and_its_output_comes_back(coder: WorkerProcess, client: SkillClient) -> None:
    out = run(client, "print(1+1)")
    assert out["stdout"] == "2\n" and out["exit_code"] == 0 and out["stderr"] == ""
    assert not out["timed_out"] and not out["truncated"] and out["duration"] > 0
    shell = run(client, "echo $((6*7)); exit 3", language="bash")
    assert shell["stdout"] == "42\n" and shell["exit_code"] == 3
    files = run(
        client,
        "import csv\nrows = csv.reader(open('data/in.csv'))\nprint(sum(int(r[1]) for r in rows))",
        files={"data/in.csv": "a,1\nb,2\nc,39\n"},
    )
    assert files["stdout"] == "42\n", files


def test_sandboxed_code_has_no_network(
    coder: WorkerProcess, client: SkillClient, redis_server: EmbeddedRedis
) -> None:
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "s.settimeout(5)\n"
        f"s.connect(('127.0.0.1', {port}))\n"
        "print('connected')\n"
    )
    out = run(client, code)
    assert out["exit_code"] != 0 and "connected" not in out["stdout"]
    assert "ConnectionRefusedError" in out["stderr"] or "unreachable" in out["stderr"], out


def test_sandboxed_code_sees_no_secret_of_the_worker(
    coder: WorkerProcess, client: SkillClient
) -> None:
    code = (
        "import os, json\n"
        "seen = {'env': dict(os.environ)}\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try: seen[pid] = open(f'/proc/{pid}/environ', 'rb').read().decode()\n"
        "        except OSError as exc: seen[pid] = repr(exc)\n"
        "print(json.dumps(seen))\n"
    )
    out = run(client, code)
    assert out["exit_code"] == 0, out
    seen = json.loads(out["stdout"])
    assert set(seen["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}
    for secret in (SECRET_VALUE, AUTH_KEY, AWS["AWS_SECRET_ACCESS_KEY"], "SKILLQ_"):
        assert secret not in out["stdout"], secret
    # Only the sandbox's own processes are visible: its init and the program.
    assert len([key for key in seen if key != "env"]) <= 3


def test_sandboxed_code_cannot_read_the_host_or_write_outside_its_work_directory(
    coder: WorkerProcess, client: SkillClient, ext_dir: Path
) -> None:
    repository_file = Path(__file__).resolve()
    skill_module = ext_dir / "sandbox_skills.py"
    code = (
        "import json\n"
        "found = {}\n"
        f"for path in [{str(repository_file)!r}, {str(skill_module)!r}, '/etc/passwd', "
        "'/root/.bashrc', '/var/log']:\n"
        "    try: open(path).read(); found[path] = 'read'\n"
        "    except OSError as exc: found[path] = type(exc).__name__\n"
        "for path in ['/usr/owned', '/etc/owned', '/owned', '/proc/owned', '/dev/owned', "
        "'/work/mine', '/tmp/mine']:\n"
        "    try: open(path, 'w').write('x'); found[path] = 'wrote'\n"
        "    except OSError as exc: found[path] = type(exc).__name__\n"
        "print(json.dumps(found))\n"
    )
    found = json.loads(run(client, code)["stdout"])
    for path in (str(repository_file), str(skill_module), "/etc/passwd", "/root/.bashrc"):
        assert found[path] == "FileNotFoundError", (path, found)
    for path in ("/usr/owned", "/etc/owned", "/owned", "/proc/owned", "/dev/owned"):
        assert found[path] != "wrote", (path, found)
    assert found["/work/mine"] == "wrote" and found["/tmp/mine"] == "wrote"
    assert not Path("/usr/owned").exists() and not Path("/owned").exists()


@pytest.mark.keeps_pool
def test_an_endless_loop_is_killed_at_the_timeout(
    coder: WorkerProcess, client: SkillClient
) -> None:
    out = run(client, "while True: pass", timeout=2)
    assert out["timed_out"] and out["exit_code"] == -9
    assert 2 <= out["duration"] < 30
    wait_for(lambda: not sandbox_processes(), timeout=10, what="no sandbox process left")


def test_a_memory_hog_and_a_fork_bomb_are_stopped_and_the_worker_keeps_serving(
    coder: WorkerProcess, client: SkillClient
) -> None:
    hog = run(client, "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))")
    assert hog["exit_code"] != 0 and "MemoryError" in hog["stderr"], hog
    bomb = run(
        client,
        "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        timeout=5,
    )
    assert bomb["timed_out"], bomb
    # The shell returns at once, leaving its forks behind: they die with the
    # sandbox's PID namespace, or stop at the process limit, or at the timeout.
    shell_bomb = run(client, ":(){ :|:& };:", language="bash", timeout=5)
    assert shell_bomb["duration"] < 30, shell_bomb
    wait_for(lambda: not sandbox_processes(), timeout=15, what="no sandbox process left")
    assert run(client, "print('still here')")["stdout"] == "still here\n"
    assert coder.process is not None and coder.process.poll() is None


def test_output_over_the_cap_is_cut_and_says_so(coder: WorkerProcess, client: SkillClient) -> None:
    out = run(client, "import sys\nsys.stdout.write('x' * (3 * 1024 * 1024))\nprint('end')")
    assert out["truncated"] and out["exit_code"] == 0
    assert out["stdout"].startswith("x" * 1000)
    assert "[skillq: output cut: 3145732 bytes written, the first 1048576 kept]" in out["stdout"]
    assert len(out["stdout"]) < 1024 * 1024 + 200


def test_cancelling_the_job_kills_its_sandbox(coder: WorkerProcess, client: SkillClient) -> None:
    job = client.submit("sandbox_run", {"code": "while True: pass", "timeout": 120})
    wait_for(lambda: sandbox_processes(), timeout=30, what="the sandbox to start")
    assert client.cancel(job)
    wait_for(lambda: client.status(job).finished, timeout=30, what="the job to end")
    assert client.status(job).state == "cancelled"
    wait_for(lambda: not sandbox_processes(), timeout=10, what="no sandbox process left")


def test_the_sandbox_is_announced_only_where_attached_and_a_broken_one_stops_the_worker(
    coder: WorkerProcess,
    client: SkillClient,
    start_worker: Callable[..., WorkerProcess],
    stack_env: dict[str, str],
) -> None:
    bare = start_worker(
        pool="threads",
        concurrency=1,
        queues="sandbox-none",
        env={"SKILLQ_SKILLS": "sandbox_skills", "SKILLQ_AGENT": "plain", "SKILLQ_SANDBOX": "none"},
    )
    try:
        agents = {agent.name: agent for agent in client.agents()}
        assert "sandbox" in agents["coder"].capabilities
        assert "sandbox" not in agents["plain"].capabilities
        with_sandbox = {a.name for a in client.agents(capability="sandbox")}
        assert "coder" in with_sandbox and "plain" not in with_sandbox
        job = client.submit("sandbox_run", {"code": "print(1)"}, queue="sandbox-none")
        wait_for(lambda: client.status(job).finished, timeout=60)
        error = client.status(job).error
        assert error is not None and error.type == "SandboxUnavailable"
    finally:
        bare.stop(timeout=10)
    cases = [
        ({"SKILLQ_SANDBOX": "bwrap", "PATH": "/nonexistent"}, "needs bubblewrap"),
        ({"SKILLQ_SANDBOX": "bwrap", "SKILLQ_SANDBOX_PYTHON": "/no/python"}, "is not a program"),
        ({"SKILLQ_SANDBOX": "docker"}, "SKILLQ_SANDBOX must be"),
        ({"SKILLQ_SANDBOX": "sandbox_skills:nothing"}, "SKILLQ_SANDBOX='sandbox_skills:nothing'"),
    ]
    for env, message in cases:
        process = WorkerProcess(
            {**stack_env, "SKILLQ_SKILLS": "sandbox_skills", **env},
            pool="threads",
            queues="nothing",
        ).start()
        assert process.process is not None
        assert process.process.wait(60) != 0, env
        assert message in process.log_path.read_text(), (env, process.log_tail(20))
    assert os.path.exists("/usr/bin/bwrap")
