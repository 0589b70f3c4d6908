"""Every name skillq checks with a Python regular expression is matched whole.

With ``re.match``, a pattern ending in ``$`` also matches before a final
newline: ``"usd\\n"`` passed the unit check as a unit of its own, and a job
with the budget ``{"usd\\n": 0.05}`` then spent ``usd`` unchecked. Patterns
end in ``\\Z`` or are used with ``fullmatch``; this reads the package's
source for any that ends in a bare ``$``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "worker"
CALLS = {"compile", "match", "search", "fullmatch"}


def bare_dollars(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id == "re" and node.func.attr in CALLS):
            continue
        pattern = node.args[0] if node.args else None
        if isinstance(pattern, ast.Constant) and isinstance(pattern.value, str):
            text = pattern.value
            if text.endswith("$") and not text.endswith("\\$"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {text!r}")
    return found


def test_no_name_pattern_ends_in_a_bare_dollar() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in bare_dollars(path)]
    assert found == [], "match names whole: end the pattern in \\Z or use fullmatch"
