"""The emulator's schema facts match the discovery document, and the validator works.

Run this file as a script to regenerate ``inventory/emulator/discovery_facts.json`` from the
discovery document: ``.venv/bin/python tests/test_emulator_schema.py [path/to/discovery.json]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from inventory.emulator import generate_fleet
from inventory.emulator.schema import FACTS_PATH, facts, validate, validate_error

DISCOVERY = (
    Path(__file__).resolve().parents[2] / "shared" / "api" / "androiddeviceprovisioning.v1.json"
)
METHODS = (
    "partners.customers.list",
    "partners.devices.findByOwner",
    "partners.devices.findByIdentifier",
    "partners.devices.get",
    "partners.vendors.list",
    "partners.vendors.customers.list",
)
KEEP = ("type", "format", "enum", "$ref", "readOnly")


def _strip(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: spec[k] for k in KEEP if k in spec}
    for nested in ("items", "additionalProperties"):
        if nested in spec:
            out[nested] = _strip(spec[nested])
    return out


def _methods(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = dict(resource.get("methods", {}))
    for child in resource.get("resources", {}).values():
        found.update(_methods(child))
    return {m["id"]: m for m in found.values()}


def build_facts(discovery: dict[str, Any]) -> dict[str, Any]:
    """Keep from the discovery document only the facts the emulator needs (no prose)."""
    methods: dict[str, Any] = {}
    refs: list[str] = ["Status"]
    by_id = _methods(discovery)
    for short in METHODS:
        m = by_id[f"androiddeviceprovisioning.{short}"]
        methods[short] = {
            "httpMethod": m["httpMethod"],
            "path": m["path"],
            "flatPath": m["flatPath"],
            "parameters": {
                name: {k: p[k] for k in ("type", "format", "location", "required") if k in p}
                for name, p in m.get("parameters", {}).items()
            },
            "request": m.get("request", {}).get("$ref"),
            "response": m["response"]["$ref"],
        }
        refs += [r for r in (methods[short]["request"], methods[short]["response"]) if r]
    schemas: dict[str, Any] = {}
    while refs:
        name = refs.pop()
        if name in schemas:
            continue
        props = {k: _strip(v) for k, v in discovery["schemas"][name]["properties"].items()}
        schemas[name] = props
        for spec in props.values():
            for s in (spec, spec.get("items", {}), spec.get("additionalProperties", {})):
                if "$ref" in s:
                    refs.append(s["$ref"])
    return {
        "revision": discovery["revision"],
        "rootUrl": discovery["rootUrl"],
        "standardParameters": sorted(discovery["parameters"]),
        "methods": methods,
        "schemas": dict(sorted(schemas.items())),
    }


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_facts_match_the_discovery_document() -> None:
    if not DISCOVERY.exists():
        pytest.skip(f"{DISCOVERY} is not present")
    expected = build_facts(json.loads(DISCOVERY.read_text(encoding="utf-8")))
    assert facts() == expected, "regenerate: .venv/bin/python tests/test_emulator_schema.py"


def test_facts_carry_no_prose() -> None:
    assert "description" not in FACTS_PATH.read_text(encoding="utf-8")


def test_generated_devices_and_customers_conform() -> None:
    fleet = generate_fleet(devices=600, customers=20, seed=3)
    for device in fleet.iter_devices():
        assert validate(device, "Device") == [], device
    for company in fleet.iter_customers():
        assert validate(company, "Company") == [], company


@pytest.mark.parametrize(
    ("value", "schema", "fragment"),
    [
        ({"deviceId": 12}, "Device", "expected a JSON string"),
        ({"deviceId": "1.5"}, "Device", "decimal int64"),
        ({"devices": [], "totalSize": 1}, "FindDevicesByOwnerResponse", "empty array"),
        ({"totalSize": "3"}, "FindDevicesByOwnerResponse", "expected a JSON number"),
        ({"totalSize": 0}, "FindDevicesByOwnerResponse", "default"),
        ({"claims": [{"sectionType": "ZERO_TOUCH"}]}, "Device", "is not one of"),
        ({"claims": [{"vacationModeStartTime": "2024-01-01 10:00"}]}, "Device", "RFC 3339"),
        ({"deviceIdentifier": {"imei3": "1"}}, "Device", "not a field"),
        ({"deviceMetadata": {"entries": {"k": 5}}}, "Device", "expected a JSON string"),
        ({"name": ""}, "Device", "empty string"),
        ({"googleWorkspaceAccount": {}}, "Company", "empty message"),
    ],
)
def test_validator_reports_encoding_mistakes(value: Any, schema: str, fragment: str) -> None:
    problems = validate(value, schema)
    assert any(fragment in p for p in problems), problems


def test_error_validator() -> None:
    ok = {"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}
    assert validate_error(ok) == []
    assert validate_error({"error": {"code": 400, "message": "bad", "status": "BAD"}})
    assert validate_error({"code": 400})


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DISCOVERY
    FACTS_PATH.write_text(_dump(build_facts(json.loads(source.read_text(encoding="utf-8")))))
    print(f"wrote {FACTS_PATH}")
