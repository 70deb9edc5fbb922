"""Schema facts of the discovery document, and a validator for API JSON against them.

``discovery_facts.json`` keeps only names, types, formats, enums and references of the schemas
and methods the emulator serves (no prose); ``tests/test_emulator_schema.py`` rebuilds it from
the discovery document and checks it matches.

``validate(value, "Device")`` returns a list of problems (empty when the value conforms). On top
of the types it checks proto3 JSON encoding: int64 as decimal strings, int32 as numbers, enums
by name, google-datetime as RFC 3339 UTC, and (``strict``) no field at its default value.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

FACTS_PATH = Path(__file__).with_name("discovery_facts.json")
_INT64 = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z\Z")
_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1)}
_ERROR_STATUSES = frozenset(
    {
        "INVALID_ARGUMENT",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "RESOURCE_EXHAUSTED",
        "INTERNAL",
        "UNAVAILABLE",
        "UNIMPLEMENTED",
        "DEADLINE_EXCEEDED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "UNKNOWN",
    }
)


@cache
def facts() -> dict[str, Any]:
    """Return the schema facts (loaded once)."""
    data: dict[str, Any] = json.loads(FACTS_PATH.read_text(encoding="utf-8"))
    return data


def enum_values(schema: str, field: str) -> tuple[str, ...]:
    """Return the enum names of ``schema.field``."""
    return tuple(facts()["schemas"][schema][field]["enum"])


def field_names(schema: str) -> tuple[str, ...]:
    """Return the JSON field names of ``schema``."""
    return tuple(facts()["schemas"][schema])


def validate(value: Any, schema: str, *, strict: bool = True) -> list[str]:
    """Check ``value`` against discovery schema ``schema``.

    Args:
        value: decoded JSON.
        schema: a schema name from the facts, e.g. ``FindDevicesByOwnerResponse``.
        strict: also report fields sent at their proto3 default (empty, zero, false,
            ``*_UNSPECIFIED``), which the API omits.

    Returns:
        Problems, one line each, with a JSON path; empty when ``value`` conforms.
    """
    problems: list[str] = []
    _object(value, schema, "$", strict, problems)
    return problems


def validate_error(value: Any) -> list[str]:
    """Check an error body: ``{"error": {"code", "message", "status"[, "details"]}}``."""
    if (
        not isinstance(value, dict)
        or set(value) != {"error"}
        or not isinstance(value["error"], dict)
    ):
        return ['$: an error body is {"error": {...}}']
    err = dict(value["error"])
    problems: list[str] = []
    status = err.pop("status", None)
    if status not in _ERROR_STATUSES:
        problems.append(f"$.error.status: {status!r} is not a google.rpc.Code name")
    _object(err, "Status", "$.error", True, problems)
    if not isinstance(err.get("code"), int) or not isinstance(err.get("message"), str):
        problems.append("$.error: code and message are required")
    return problems


def _object(value: Any, schema: str, path: str, strict: bool, out: list[str]) -> None:
    props = facts()["schemas"][schema]
    if not isinstance(value, dict):
        out.append(f"{path}: expected a {schema} object, got {type(value).__name__}")
        return
    for name, item in value.items():
        spec = props.get(name)
        if spec is None:
            out.append(f"{path}.{name}: not a field of {schema}")
        else:
            _value(item, spec, f"{path}.{name}", strict, out)


def _value(value: Any, spec: dict[str, Any], path: str, strict: bool, out: list[str]) -> None:
    if "$ref" in spec:
        _object(value, spec["$ref"], path, strict, out)
        if strict and value == {}:
            out.append(f"{path}: empty message (omit it)")
        return
    kind = spec.get("type")
    if kind == "string":
        _string(value, spec, path, strict, out)
    elif kind == "integer":
        low, high = _RANGES.get(spec.get("format", "int32"), _RANGES["int64"])
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{path}: expected a JSON number ({spec.get('format')}), got {value!r}")
        elif not low <= value <= high:
            out.append(f"{path}: {value} is out of range")
        elif strict and value == 0:
            out.append(f"{path}: 0 is the default (omit it)")
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: expected true/false, got {value!r}")
        elif strict and value is False:
            out.append(f"{path}: false is the default (omit it)")
    elif kind == "array":
        if not isinstance(value, list):
            out.append(f"{path}: expected an array, got {type(value).__name__}")
            return
        if strict and not value:
            out.append(f"{path}: empty array (omit it)")
        for n, item in enumerate(value):
            _value(item, spec["items"], f"{path}[{n}]", strict, out)
    elif kind == "object":
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        if strict and not value:
            out.append(f"{path}: empty map (omit it)")
        inner = spec.get("additionalProperties", {"type": "any"})
        for key, item in value.items():
            _value(item, inner, f"{path}[{key!r}]", False, out)  # map values may be defaults
    elif kind != "any":
        out.append(f"{path}: the facts have no type {kind!r}")


def _string(value: Any, spec: dict[str, Any], path: str, strict: bool, out: list[str]) -> None:
    if not isinstance(value, str):
        out.append(
            f"{path}: expected a JSON string ({spec.get('format', 'string')}), got {value!r}"
        )
        return
    fmt = spec.get("format")
    if fmt in _RANGES:
        low, high = _RANGES[fmt]
        if not _INT64.match(value) or not low <= int(value) <= high:
            out.append(f"{path}: {value!r} is not a decimal {fmt} string")
    elif fmt == "google-datetime" and not _DATETIME.match(value):
        out.append(f"{path}: {value!r} is not an RFC 3339 UTC timestamp")
    if "enum" in spec:
        if value not in spec["enum"]:
            out.append(f"{path}: {value!r} is not one of {spec['enum']}")
        elif strict and value == spec["enum"][0] and value.endswith("_UNSPECIFIED"):
            out.append(f"{path}: {value} is the default (omit it)")
    elif strict and value == "":
        out.append(f"{path}: empty string is the default (omit it)")
