"""Bad input never leaks and never sticks: every public method of every family API has a
schema, and generated bad input to any argument of any method is one ``Invalid`` naming that
argument (or a path inside it) - nothing from SQLAlchemy, the standard library or a transport -
with nothing written to the database."""

from __future__ import annotations

import inspect
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stackcore
from stackcore import exception, schemas
from stackcore.project.scope import ScopedAPI

FAMILIES = ("compute", "volume", "network", "project", "image")


def _public_methods(api: Any) -> list[tuple[str, Callable[..., Any]]]:
    return [(name, getattr(type(api), name)) for name in sorted(dir(type(api)))
            if not name.startswith("_") and inspect.isfunction(getattr(type(api), name))
            and name not in ScopedAPI.FRAMEWORK]


@pytest.fixture(scope="module")
def fuzz_cloud(tmp_path_factory):
    cloud = stackcore.Cloud(fake_hosts=1, overrides={"DEFAULT": {
        "periodic_interval": 3600, "state_path": str(tmp_path_factory.mktemp("fuzz"))}})
    yield cloud
    cloud.close()


def _all_methods(cloud) -> list[tuple[str, str, Callable[..., Any]]]:
    return [(family, name, method) for family in FAMILIES
            for name, method in _public_methods(getattr(cloud, family))]


def test_every_public_method_has_a_schema(fuzz_cloud) -> None:
    missing = [f"cloud.{f}.{n}" for f, n, m in _all_methods(fuzz_cloud)
               if schemas.schema_of(m) is None]
    assert missing == [], f"public methods without a schema: {missing}"


# --- values ---------------------------------------------------------------------------------

def example(schema: dict[str, Any]) -> Any:
    """A value the schema accepts (placeholder for the arguments not under test)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        return example(branches[0]) if branches else None
    kind = schema.get("type")
    if kind == "string":
        return {"uuid": str(uuid.uuid4()), "ip-address": "10.0.0.1",
                "ipv4-or-ipv6-cidr": "10.0.0.0/24", "mac": "fa:16:3e:00:00:01",
                "device-name": "/dev/vdb"}.get(schema.get("format", ""), "x")
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return float(low) + (1.0 if "exclusiveMinimum" in schema else 0.0)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example(props[k]) for k in schema.get("required", [])}
    return None


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


BAD_VALUES = [
    None, [], ["x"], {}, {"k": object()}, object(), True, False, 1.5, -1, 0, 2**70,
    float("nan"), float("inf"), "", "   ", "\ud800", "a\x00b", "a\x9b[31m", "x" * 70000,
    "not-a-uuid", "/dev/../vdc", "/dev/xvA", "false", "1", "10.0.0.0/33", "fa:16:3e",
    _deep(200), {"k": "\ud800"}, [{}], [{"network_id": "nope"}], {"k" * 300: "v"},
]


def _is_invalid(key: int, base: dict[str, Any], name: str, value: Any) -> bool:
    """Whether the schema refuses ``value`` for ``name`` (the other arguments valid)."""
    try:
        schemas.check(key, {**base, name: value})
    except exception.Invalid:
        return True
    return False


# --- the property ---------------------------------------------------------------------------

def _row_counts(cloud) -> dict[str, int]:
    with cloud.db.engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        return {t: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()
                for t in tables if t != "alembic_version"}


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_argument_is_one_invalid_naming_it_and_nothing_sticks(fuzz_cloud, data) -> None:
    family, name, method = data.draw(st.sampled_from(_all_methods(fuzz_cloud)), label="method")
    schema = schemas.schema_of(method)
    assert schema is not None
    params = list(schema["properties"])
    if not params:
        return
    target = data.draw(st.sampled_from(params), label="argument")
    key = getattr(method, "__stackcore_schema_key__")
    kwargs = {p: example(schema["properties"][p]) for p in schema.get("required", [])}
    schemas.check(key, kwargs)  # the placeholders themselves are valid
    candidates = [v for v in BAD_VALUES if _is_invalid(key, kwargs, target, v)]
    if not candidates:
        return
    bad = data.draw(st.sampled_from(candidates), label="value")
    kwargs[target] = bad
    before = _row_counts(fuzz_cloud)
    api = getattr(fuzz_cloud, family)
    with pytest.raises(exception.Invalid) as caught:
        getattr(api, name)(**kwargs)
    field = str(caught.value.kwargs.get("field", ""))
    assert field == target or field.startswith((f"{target}.", f"{target}[")), \
        f"cloud.{family}.{name}({target}={bad!r:.60}) blamed {field!r}: {caught.value}"
    assert _row_counts(fuzz_cloud) == before, f"cloud.{family}.{name} wrote rows"


def test_values_used_by_the_fuzzer_are_sane() -> None:
    assert math.isnan(BAD_VALUES[12]) and example(schemas.TIMEOUT) > 0
