"""The layout holds: the client side stands alone, and each subpackage imports
only the ones beneath it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from worker.embedded import EmbeddedRedis

RUNTIME = ("worker.app", "worker.runtime", "worker.transport", "celery.worker")

PROBE = """
import json, sys
from worker.client import SkillClient
from worker.core.settings import Settings
from worker.wire.skill_info import SkillInfo
with SkillClient(Settings(broker_url=sys.argv[1])) as client:
    client._cache.update({"echo": SkillInfo(name="echo", workers=["nobody"])})
    job = client.submit("echo", {"message": "hi"})
    assert client.status(job).state == "queued"
print(json.dumps(sorted(sys.modules)))
"""


def test_submitting_loads_none_of_the_worker_runtime(redis_server: EmbeddedRedis) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, redis_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert [m for m in loaded if m.startswith(RUNTIME)] == []


# What each subpackage may import (besides itself). The root modules (the
# public API, the CLI and the compatibility paths) may import anything.
SHARED = {"core", "interface", "store", "workspace", "wire"}
ALLOWED = {
    "core": set(),
    "interface": {"core"},
    "store": {"core", "interface"},
    "workspace": {"core", "interface", "store"},
    "wire": {"core", "interface", "store", "workspace"},
    "client": SHARED,
    "capabilities": SHARED | {"client"},  # a call is a client of the callee
    "runtime": SHARED | {"capabilities", "client"},  # an inline child waits as a client does
    "server": SHARED | {"client"},
    "embedded": SHARED | {"client"},
}
PACKAGE = Path(__file__).resolve().parent.parent / "worker"
# Paths the docs showed before a move: thin re-exports of where the code lives now.
COMPATIBILITY = {"core/signing.py"}


def imported_packages(path: Path) -> set[str]:
    """Subpackages of ``worker`` a module imports, at any depth in its code."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module[: len(module) - node.level])
                parts = base + (node.module.split(".") if node.module else [])
            else:
                parts = (node.module or "").split(".")
            names = [parts] if len(parts) > 1 else [[*parts, a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        found |= {n[1] for n in names if n[0] == "worker" and len(n) > 1 and n[1] in ALLOWED}
    return found


def test_subpackages_import_only_what_lies_beneath_them() -> None:
    wrong = {}
    for package, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / package).glob("*.py")):
            if str(path.relative_to(PACKAGE)) in COMPATIBILITY:
                continue
            extra = imported_packages(path) - allowed - {package}
            if extra:
                wrong[str(path.relative_to(PACKAGE.parent))] = sorted(extra)
    assert wrong == {}, f"imports across the layout (see docs/ARCHITECTURE.md): {wrong}"


def test_the_layout_check_sees_imports() -> None:
    """The check above must not pass by seeing nothing."""
    assert imported_packages(PACKAGE / "runtime" / "runner.py") >= {"core", "store"}
    assert imported_packages(PACKAGE / "__init__.py") >= {"core", "capabilities"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """Modules of ``worker`` this one imports when it is imported (not in functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c.startswith("worker")}
    return found


def test_no_import_cycle_between_modules() -> None:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {
        name: {target for target in top_level_imports(path) if target in paths and target != name}
        for name, path in paths.items()
    }
    # A package's __init__ re-exporting its modules is not a cycle of theirs.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], cycles
    # The check must not pass by seeing nothing.
    assert "worker.store.celery_results" in graph["worker.store.jobs"]
    assert "worker.client.following" in graph["worker.client.asynchronous"]


def test_no_module_is_over_400_lines() -> None:
    """Small modules, one concern each: a module past 400 lines holds two."""
    long = {
        str(path.relative_to(PACKAGE)): length
        for path in PACKAGE.rglob("*.py")
        if (length := len(path.read_text().splitlines())) > 400
    }
    assert not long, long
