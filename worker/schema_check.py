"""A client-side pre-check of args against a skill's published JSON schema.

The worker's pydantic model is the authority; this check only catches what
the model would certainly refuse (a missing required field, an unknown field
where none are allowed, a list where a number belongs), so a bad job fails at
``submit`` instead of on a worker. It never second-guesses pydantic's lax
coercions: ``"5"`` for an integer passes here because it passes there.
"""

from __future__ import annotations

from typing import Any

SCALARS = frozenset({"string", "integer", "number", "boolean"})


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node if isinstance(node, dict) else {}
        seen += 1
    return schema


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def _accepts_kind(schema: dict[str, Any], root: dict[str, Any], kind: str) -> bool:
    """Whether some branch of the schema could take a value of this kind."""
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return any(_accepts_kind(branch, root, kind) for branch in schema[key])
    declared = schema.get("type")
    if declared is None:
        return True
    types = set(declared) if isinstance(declared, list) else {declared}
    if kind == "object":
        return "object" in types
    if kind == "array":
        return "array" in types
    return bool(types & (SCALARS | {"null"}))


def problems(
    value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = ""
) -> list[str]:
    """Reasons the value cannot fit the schema (empty when it may fit)."""
    schema = _resolve(schema, root)
    label = where or "args"
    kind = _kind(value)
    if not _accepts_kind(schema, root, kind):
        return [f"{label}: expected {schema.get('type', 'another type')}, got {kind}"]
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        fitting = [b for b in branches if _accepts_kind(b, root, kind)]
        # Only one branch can take this value: its rules apply. With several,
        # pydantic picks one and so does not fail on any single branch's rules.
        return problems(value, fitting[0], root, where) if len(fitting) == 1 else []
    if kind != "object" or schema.get("type") != "object":
        return []
    found: list[str] = []
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            found.append(f"{where + '.' if where else ''}{name}: field required")
    if schema.get("additionalProperties") is False:
        for name in value:
            if name not in properties:
                found.append(f"{where + '.' if where else ''}{name}: unexpected field")
    for name, item in value.items():
        if name in properties:
            path = f"{where}.{name}" if where else name
            found.extend(problems(item, properties[name], root, path))
    return found


def check_args(value: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    return problems(value, schema, schema)
