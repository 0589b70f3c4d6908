"""Every command and code block of README.md and docs/ runs as written.

Each page runs as one shell script in a checkout of its own (the repository's
Makefile and virtualenv, nothing else), with an empty HOME and no SKILLQ_*
settings, in a network namespace of its own: ``localhost:6379`` and
``localhost:8000`` there are the page's own, so the commands keep the default
addresses a reader would use and never meet this machine's services.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .blocks import blocks, output_matches, page_script

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHECKOUT = ("Makefile", "pyproject.toml", "constraints.txt", ".venv", "worker", "tasks")


def checkout(tmp_path: Path) -> Path:
    here = tmp_path / "skillq"
    here.mkdir()
    for name in CHECKOUT:
        (here / name).symlink_to(ROOT / name)
    return here


def installed() -> None:
    stamp = ROOT / ".venv" / ".installed-stamp"
    newest = max((ROOT / n).stat().st_mtime for n in ("pyproject.toml", "constraints.txt"))
    if not stamp.exists() or stamp.stat().st_mtime < newest:
        pytest.fail("the virtualenv is older than pyproject.toml: run `make test` again")


def isolated_env(home: Path, out: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLQ_", "VIRTUAL_ENV"))}
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in keep.get("PATH", "").split(":") if p != venv_bin)
    return {
        **keep,
        "HOME": str(home),
        "PATH": f"{venv_bin}:{path}",
        "DOC_OUT": str(out),
        "COLUMNS": "120",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_runs_as_written(page: Path, tmp_path: Path) -> None:
    installed()
    built = page_script(blocks(page, ROOT))
    assert built.problems == []
    here = checkout(tmp_path)
    out = tmp_path / "out"
    (tmp_path / "page.sh").write_text(built.script)
    log = tmp_path / "page.log"
    with log.open("wb") as sink:
        shell = subprocess.Popen(
            [
                "unshare",
                "--net",
                "bash",
                "-c",
                f"ip link set lo up && exec bash {tmp_path / 'page.sh'}",
            ],
            cwd=here,
            env=isolated_env(tmp_path / "home", out),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = shell.wait(timeout=420)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            # Whatever the page left behind (a worker, a Redis) goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    assert code == 0, f"{page.name} stopped (exit {code}):\n{text[-6000:]}"
    for number, block in built.expected.items():
        actual = (out / str(number)).read_text(errors="replace")
        missing = output_matches(block.text, actual)
        assert missing is None, f"{block.where}: {missing!r} not printed; got:\n{actual[-3000:]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_blocks_that_cannot_run_here_name_the_test_that_checks_them(page: Path) -> None:
    for block in page_script(blocks(page, ROOT)).checked_elsewhere:
        assert block.marker is not None
        target = block.marker.removeprefix("checked by ").strip()
        if target == ".ci/run":
            assert (ROOT / ".ci" / "run").exists()
            continue
        file, _, test = target.partition("::")
        source = (ROOT / file).read_text()
        assert f"def {test}(" in source, f"{block.where}: {target} does not exist"


def test_the_page_runner_sees_a_failing_block_and_a_wrong_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh\necho one\n```\n\n```text\ntwo\n```\n\n```yaml\na: 1\n```\n")
    built = page_script(blocks(page, tmp_path))
    assert len(built.problems) == 1 and "page.md:9" in built.problems[0]
    assert output_matches("two", "one\n") == "two"
    assert output_matches("a\n...\nc", "a\nb\nc\n") is None
    assert output_matches("c\na", "a\nb\nc\n") == "a"


def test_unshare_and_ip_are_here() -> None:
    """The runner's isolation is part of the test: missing tools fail, not skip."""
    assert shutil.which("unshare") and shutil.which("ip"), "make tools installs util-linux/iproute2"
