"""The fast "certainly valid" predicates (stackcore.fastschema) never accept what jsonschema
refuses: every schema of every API method and every stats schema, over a corpus of values."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from stackcore import families, fastschema, schemas, stats

UUID = str(uuid.uuid4())
CORPUS: list[Any] = [
    None, True, False, 0, 1, -1, 2, 100, 4096, 10**12, 0.5, 1.0, 3.0, -2.5, float("inf"),
    float("nan"), "", " ", "a", "name", "x" * 300, "tab\there", "\x00", "\ud800", "caf\u00e9",
    UUID, UUID.upper(), "not-a-uuid", "10.0.0.1", "fe80::1", "10.0.0.0/24", "10.0.0.0",
    "aa:bb:cc:dd:ee:ff", "/dev/vdb", "/dev/../vdb", "asc", "desc", "auto", "up", "down",
    "iSCSI", "NFS", "ceph", "infinite", "unknown", "SOFT", "HARD", "ACTIVE", "a.b:c-d_e",
    [], [1], ["a"], ["a", "a"], [1, 1.0], [True, 1], [UUID], [UUID, UUID], [{"a": 1}], ("a",),
    {}, {"a": "b"}, {"a": None}, {"a": 1}, {"": "x"}, {"a": {"b": {"c": {"d": {}}}}},
    {"network_id": UUID}, {"port_id": UUID}, {"volume_id": UUID},
    {"volume_id": UUID, "mountpoint": "/dev/vdc"},
    {"network_id": UUID, "fixed_ips": [{"ip_address": "10.0.0.5"}]},
    {"network_id": UUID, "fixed_ips": [{"subnet_id": UUID}]},
    {"ip_address": "10.0.0.5"}, {"ip_address": "10.0.0.5", "mac_address": "aa:bb:cc:dd:ee:ff"},
    [{"ip_address": "10.0.0.5"}], [{"network_id": UUID}], [{"port_id": UUID}],
]


def _subschemas(schema: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(schema, Mapping):
        yield schema
        for value in schema.values():
            yield from _subschemas(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _subschemas(item)


def _api_schemas() -> list[dict[str, Any]]:
    for fam in families.all_families():
        for module in (f"stackcore.{fam.name}.api",):
            try:
                importlib.import_module(module)
            except ModuleNotFoundError:
                continue
    return list(schemas._SCHEMAS.values())


def _stats_schemas() -> list[Mapping[str, Any]]:
    from stackcore.compute import stats as compute_stats
    from stackcore.network import stats as network_stats
    from stackcore.volume import stats as volume_stats

    return [compute_stats.SCHEMA, volume_stats.SCHEMA, volume_stats.POOL_SCHEMA,
            network_stats.TYPE_USAGE_SCHEMA]


def test_every_api_schema_has_a_fast_path() -> None:
    found = _api_schemas()
    assert len(found) > 50, f"only {len(found)} API schemas registered"
    slow = [s for s in found if fastschema.compile_schema(
        s, schemas.FORMATS, {"maxDepth": fastschema.max_depth(schemas._depth),
                             "maxJsonLength": fastschema.max_json_length(schemas._depth)}) is None]
    assert not slow, f"schemas without a fast path: {slow[:3]}"


def test_api_fast_path_never_accepts_what_jsonschema_refuses() -> None:
    extra = {"maxDepth": fastschema.max_depth(schemas._depth),
             "maxJsonLength": fastschema.max_json_length(schemas._depth)}
    seen: set[str] = set()
    checked = accepted = 0
    for whole in _api_schemas():
        for sub in _subschemas(whole):
            key = repr(sub)
            if key in seen:
                continue
            seen.add(key)
            fast = fastschema.compile_schema(sub, schemas.FORMATS, extra)
            if fast is None:
                continue
            validator = schemas._validator_class()(sub)
            for value in CORPUS:
                checked += 1
                if fast(value):
                    accepted += 1
                    assert validator.is_valid(value), (
                        f"fast path accepted {value!r} which jsonschema refuses for {sub}")
    assert checked > 1000 and accepted > 100, (checked, accepted)


def test_api_fast_path_accepts_the_common_valid_calls() -> None:
    """The point of the fast path: valid values do not fall back to jsonschema."""
    extra = {"maxDepth": fastschema.max_depth(schemas._depth),
             "maxJsonLength": fastschema.max_json_length(schemas._depth)}
    cases = [(schemas.UUID, UUID), (schemas.NAME, "web-1"), (schemas.OPTIONAL_UUID, None),
             (schemas.LIMIT, 10), (schemas.STRING_MAP, {"k": "v"}), (schemas.BOOLEAN, False),
             (schemas.TIMEOUT, 2.5), (schemas.CIDR, "10.0.0.0/24"), (schemas.MAC,
                                                                     "aa:bb:cc:dd:ee:ff")]
    for schema, value in cases:
        fast = fastschema.compile_schema(schema, schemas.FORMATS, extra)
        assert fast is not None and fast(value), (schema, value)


@pytest.mark.parametrize("index", range(4))
def test_stats_fast_path_never_accepts_what_jsonschema_refuses(index: int) -> None:
    schema = _stats_schemas()[index]
    for sub in _subschemas(schema):
        fast = fastschema.compile_schema(sub)
        if fast is None:
            continue
        validator = stats.strict_validator_class()(sub)
        for value in CORPUS:
            if fast(value):
                assert validator.is_valid(value), (
                    f"fast path accepted {value!r} which jsonschema refuses for {sub}")


def test_stats_reports_of_the_embedded_default_take_the_fast_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A valid report never reaches jsonschema (a service's start-up would import it)."""
    import stackcore
    from stackcore.volume import stats as volume_stats

    def slow(_key: str) -> Any:
        raise AssertionError("a valid stats report went to jsonschema")

    monkeypatch.setattr(stats, "_validator", slow)
    with stackcore.Cloud(fake_hosts=1, overrides={"DEFAULT": {"state_path": str(tmp_path)}}
                         ) as cloud:
        cloud.tick()  # every service reports again
        assert [h.host for h in cloud.compute.list_hosts()] == ["compute-1"]
    monkeypatch.undo()
    # and a report breaking a rule is refused by jsonschema, naming the field
    pool = {"pool_name": "p", "total_capacity_gb": 10, "free_capacity_gb": 5,
            "reserved_percentage": 101, "thin_provisioning_support": True,
            "thick_provisioning_support": False, "provisioned_capacity_gb": 0,
            "max_over_subscription_ratio": 20.0, "multiattach": False,
            "online_extend_support": True}
    fast = fastschema.compile_schema(volume_stats.POOL_SCHEMA)
    assert fast is not None and not fast(pool)
    assert fast({**pool, "reserved_percentage": 0}), "a valid pool is not taken as valid"
