"""The stats schema of the type-driver family (pool usage), as JSON Schema."""

from __future__ import annotations

from typing import Any

from stackcore import stats

TYPE_USAGE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ML2 type driver usage",
    "type": "object",
    "required": ["network_type", "ranges"],
    "additionalProperties": False,
    "properties": {
        "network_type": {"type": "string", "minLength": 1},
        "ranges": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["physical_network", "first", "last", "total", "allocated", "free"],
                "additionalProperties": False,
                "properties": {
                    "physical_network": {"type": ["string", "null"]},
                    "first": {"type": ["integer", "null"], "minimum": 0},
                    "last": {"type": ["integer", "null"], "minimum": 0},
                    "total": {"type": "integer", "minimum": 0},
                    "allocated": {"type": "integer", "minimum": 0},
                    "free": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}


def validate_usage(report: Any, source: str) -> dict[str, Any]:
    """Check a type driver's :meth:`get_usage` report; StatsSchemaError names the field."""
    return stats.validate(TYPE_USAGE_SCHEMA, report, source)
