"""A client-side pre-check of args against a skill's published JSON schema.

The worker's pydantic model is the authority; this check refuses at
``submit`` what the model would certainly refuse on a worker, with the field
named, and never what it would accept. It runs the schema through
``jsonschema`` (constraints, nested objects, ``$ref``, enums, patterns all
apply) with types widened to pydantic's lax mode: ``"5"`` is an integer and
``"yes"`` a boolean here because pydantic converts them there, and numeric
bounds apply to the converted number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match

TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})
NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
MAX_REPORTED = 10


def lax_number(value: Any) -> float | int | None:
    """The number pydantic would read ``value`` as, or None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def lax_int(value: Any) -> int | None:
    number = lax_number(value)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        return None
    return int(number)


def lax_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def _variants(value: Any) -> Iterator[Any]:
    """What pydantic might convert ``value`` to, for enum and const checks."""
    for convert in (lax_int, lax_number, lax_bool):
        converted = convert(value)
        if converted is not None:
            yield converted
    if isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


Check = Callable[[Any, Any, Any, dict[str, Any]], Iterator[ValidationError]]


def _on_number(original: Check) -> Check:
    def check(validator: Any, bound: Any, instance: Any, schema: dict[str, Any]) -> Any:
        number = lax_number(instance)
        if number is None or (isinstance(number, float) and math.isnan(number)):
            return
        yield from original(validator, bound, number, schema)

    return check


def _lenient(original: Check) -> Check:
    def check(validator: Any, expected: Any, instance: Any, schema: dict[str, Any]) -> Any:
        errors = list(original(validator, expected, instance, schema))
        if errors and not any(
            not list(original(validator, expected, variant, schema))
            for variant in _variants(instance)
        ):
            yield from errors

    return check


def _lax_validator() -> Any:
    base = Draft202012Validator
    types = base.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, value: lax_int(value) is not None,
            "number": lambda _, value: lax_number(value) is not None,
            "boolean": lambda _, value: lax_bool(value) is not None,
        }
    )
    checks: dict[str, Any] = {key: _on_number(base.VALIDATORS[key]) for key in NUMERIC_KEYWORDS}
    checks["enum"] = _lenient(base.VALIDATORS["enum"])
    checks["const"] = _lenient(base.VALIDATORS["const"])
    # With widened types several branches may fit; pydantic picks one.
    checks["oneOf"] = base.VALIDATORS["anyOf"]
    return validators.extend(base, validators=checks, type_checker=types)  # type: ignore[no-untyped-call]


LaxValidator = _lax_validator()


def check_args(value: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Reasons ``value`` cannot fit the schema, each naming its field (empty if it may)."""
    if not schema:
        return []
    try:
        validator = LaxValidator(schema)
        errors = sorted(validator.iter_errors(value), key=lambda error: list(error.absolute_path))
    except (SchemaError, RecursionError):
        return []  # a schema we cannot read: leave the verdict to the worker
    found = []
    for error in errors[:MAX_REPORTED]:
        if error.context:
            # anyOf: report the branch the value's type fits (its real problem),
            # not "is not of type 'null'" from the branch it obviously is not.
            fitting = [e for e in error.context if e.validator != "type"] or error.context
            error = best_match(fitting) or error
        path = [str(part) for part in error.absolute_path]
        message = error.message
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [name for name in error.validator_value if name not in error.instance]
            path, message = [*path, missing[0] if missing else "?"], "field required"
        found.append(f"{'.'.join(path) or 'args'}: {message}")
    return found
