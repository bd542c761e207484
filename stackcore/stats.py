"""Validating driver stats reports against a family's JSON schema.

Each family publishes its stats schema as a JSON-Schema document (so it can be rendered in the
docs and reused by other languages). :func:`validate` checks one report and raises a single
:class:`~stackcore.exception.StatsSchemaError` naming the first offending field.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from stackcore import exception, fastschema


@functools.cache
def strict_validator_class() -> Any:
    """Draft 2020-12 where ``integer`` means an int: JSON Schema counts ``8192.0`` as an
    integer, but a report saying ``memory_mb = 8192.0`` is a driver bug (the value is summed,
    compared and stored as an integer column), so it is refused, naming the field."""
    import jsonschema  # deferred: only reporting paths pay for it

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(base, type_checker=checker)


@functools.cache
def _fast(schema_json: str) -> fastschema.Check | None:
    return fastschema.compile_schema(json.loads(schema_json))


@functools.cache
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = strict_validator_class()
    cls.check_schema(schema)
    return cls(schema)


def validate(schema: Mapping[str, Any], report: Any, source: str) -> dict[str, Any]:
    """Return ``report`` as a dict if it meets ``schema``; raise StatsSchemaError otherwise.

    ``source`` names who reported (e.g. ``"compute driver 'fake' on host-1"``) for the message.
    """
    key = json.dumps(schema, sort_keys=True)
    fast = _fast(key)
    # A report that certainly meets the schema is accepted without jsonschema (see
    # stackcore.fastschema: a service's first report must not import it); anything else is
    # decided and worded by jsonschema.
    if fast is not None and fast(report):
        return dict(report)
    import jsonschema

    validator = _validator(key)
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is None:
        return dict(report)
    field = ".".join(str(p) for p in error.absolute_path)
    if not field and error.validator == "required":
        # "'vcpus' is a required property" -> the missing key is the field.
        field = str(error.message).split("'")[1] if "'" in error.message else ""
    raise exception.StatsSchemaError(
        f"stats from {source} rejected: field {field or '<report>'!r}: {error.message}",
        field=field or "<report>",
    )
