"""README and docs/ read as scripts: each fenced block becomes a step a reader
would take, in order, so a test can run a page exactly as written.

A block's meaning comes from its language and an optional marker on the line
before it, ``<!-- doc-test: ... -->``:

- ``sh``/``bash``: the lines run in one shell for the whole page (exports and
  background jobs carry over, as in a reader's terminal);
- a block whose first line is ``# name.py`` (or ``.yaml``, ``Dockerfile...``):
  the file the reader saves; any other ``python`` block runs with ``python``;
- ``text`` right after a runnable block: what that block prints; every line
  must appear in its output, in order (``...`` matches anything);
- ``<!-- doc-test: checked by PATH::TEST -->``: a block that cannot run here
  (a cluster, a container engine) names the test that checks it instead;
  ``checked by .ci/run`` names CI itself;
- ``<!-- doc-test: not code -->``: a drawing without a language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!-- doc-test: (?P<what>.+?) -->\s*$")
FILE_LINE = re.compile(
    r"^# (?P<name>(?:[\w./-]+\.(?:py|yaml|yml|json|txt))|Dockerfile[\w.-]*)(?:\s|$)"
)
RUNNABLE = ("sh", "bash", "python")
HEREDOC_END = "SKILLQ_DOC_BLOCK_END"


@dataclass
class Block:
    path: str
    line: int
    lang: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def file_name(self) -> str | None:
        first = self.text.splitlines()[0] if self.text else ""
        found = FILE_LINE.match(first)
        return found["name"] if found and self.lang != "sh" else None


def blocks(path: Path, root: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent = len(opening["indent"])
        marker = MARKER.match(lines[index - 1]) if index else None
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(r"^ *```\s*$", lines[index]):
            body.append(lines[index][indent:])
            index += 1
        found.append(
            Block(
                str(path.relative_to(root)),
                index - len(body),
                opening["lang"],
                "\n".join(body) + "\n",
                marker["what"] if marker else None,
            )
        )
        index += 1
    return found


@dataclass
class Page:
    """A page turned into one shell script and the outputs it must print."""

    script: str
    expected: dict[int, Block]
    checked_elsewhere: list[Block]
    problems: list[str]


def page_script(page: list[Block]) -> Page:
    parts = [
        "set -euo pipefail",
        'mkdir -p "$DOC_OUT"',
        # A reader's terminal closes with the page: stop what it left running.
        "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT",
    ]
    expected: dict[int, Block] = {}
    elsewhere: list[Block] = []
    problems: list[str] = []
    previous: int | None = None
    for number, block in enumerate(page):
        if block.marker and block.marker.startswith("checked by "):
            elsewhere.append(block)
            previous = None
            continue
        if block.marker == "not code":
            if block.lang:
                problems.append(f"{block.where}: a block marked 'not code' has a language")
            continue
        if block.lang == "text":
            if previous is None:
                problems.append(f"{block.where}: an output block follows nothing that runs")
            else:
                expected[previous] = block
            previous = None
            continue
        if block.lang not in RUNNABLE and not block.file_name:
            problems.append(
                f"{block.where}: a '{block.lang or 'plain'}' block neither runs nor names "
                "the test that checks it (<!-- doc-test: checked by PATH::TEST -->)"
            )
            continue
        parts.append(f"echo '### {block.where}' >&2")
        if block.file_name:
            parts.append(f"cat > {block.file_name} <<'{HEREDOC_END}'\n{block.text}{HEREDOC_END}")
            previous = None
            continue
        if block.lang == "python":
            body = f"python - <<'{HEREDOC_END}'\n{block.text}{HEREDOC_END}"
        else:
            body = block.text.rstrip("\n")
        parts.append(f'{{\n{body}\n}} > "$DOC_OUT/{number}"\ncat "$DOC_OUT/{number}"')
        previous = number
    return Page("\n".join(parts) + "\n", expected, elsewhere, problems)


def output_matches(expected: str, actual: str) -> str | None:
    """None when every expected line appears in ``actual``, in order; else the
    first line that does not."""
    lines = actual.splitlines()
    at = 0
    for wanted in expected.splitlines():
        if wanted.strip() in ("", "..."):
            continue
        while at < len(lines) and wanted.strip() not in lines[at]:
            at += 1
        if at == len(lines):
            return wanted
        at += 1
    return None
