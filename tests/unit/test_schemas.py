"""The schema layer itself: each rule refuses what it should, names the field (path), shows the
value safely, and accepts what it should."""

from __future__ import annotations

import pytest

from stackcore import exception
from stackcore import schemas as s

UUID = "0b0e6f1e-8a4c-4d2a-9c7e-1f2e3d4c5b6a"


class Api:
    @s.accepts(name=s.NAME, count=s.integer(1, 10), flag=s.BOOLEAN, meta=s.optional(s.STRING_MAP),
               items=s.optional(s.array(s.obj({"id": s.UUID, "ips": s.array(
                   s.obj({"ip": s.IP_ADDRESS}, min_properties=1))}, required=["id"]))),
               doc=s.optional(s.json_document(max_depth=3)), dev=s.optional(s.DEVICE_NAME),
               timeout=s.TIMEOUT)
    def call(self, name, count=1, flag=False, meta=None, items=None, doc=None, dev=None,
             timeout=None):
        return "ran"


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"name": ["x"]}, "name", "type string"),
    ({"name": object()}, "name", "type string"),
    ({"name": "\ud800"}, "name", "printable"),
    ({"name": "red\x9b31m"}, "name", "printable"),
    ({"name": "tab\there"}, "name", "printable"),
    ({"name": "   "}, "name", "printable"),
    ({"name": "x" * 256}, "name", "at most 255"),
    ({"name": "x", "count": True}, "count", "type integer"),
    ({"name": "x", "count": 3.0}, "count", "type integer"),
    ({"name": "x", "count": 11}, "count", "<= 10"),
    ({"name": "x", "flag": "false"}, "flag", "type boolean"),
    ({"name": "x", "flag": None}, "flag", "type boolean"),
    ({"name": "x", "meta": {"k": 1}}, "meta['k']", "type string"),
    ({"name": "x", "items": [{"id": UUID, "ips": [{}]}]}, "items[0].ips[0]", "at least 1"),
    ({"name": "x", "items": [{"id": "nope"}]}, "items[0].id", "not a UUID"),
    ({"name": "x", "items": [{"id": UUID, "extra": 1}]}, "items[0]", "extra"),
    ({"name": "x", "doc": {"a": {"b": {"c": {"d": {}}}}}}, "doc", "deeper than 3"),
    ({"name": "x", "dev": "/dev/../vdc"}, "dev", "device name"),
    ({"name": "x", "dev": "/dev/xvA"}, "dev", "device name"),
    ({"name": "x", "timeout": -1}, "timeout", "> 0"),
    ({"name": "x", "timeout": float("nan")}, "timeout", "type number"),
    ({"name": "x", "bogus": 1}, "bogus", "unexpected"),
    ({}, "name", "missing"),
])
def test_bad_argument_is_invalid_naming_the_field(kwargs, field, words) -> None:
    with pytest.raises(exception.Invalid) as caught:
        Api().call(**kwargs)
    assert caught.value.kwargs["field"] == field, caught.value.kwargs
    assert words in str(caught.value), str(caught.value)


@pytest.mark.parametrize("kwargs", [
    {"name": "<>&'\"$;"}, {"name": "web", "count": 10, "flag": True, "meta": None},
    {"name": "x", "items": [{"id": UUID, "ips": [{"ip": "2001:db8::1"}]}]},
    {"name": "x", "dev": "/dev/vdb", "timeout": 0.5, "doc": {"a": {"b": 1}}},
])
def test_good_arguments_run_the_method(kwargs) -> None:
    assert Api().call(**kwargs) == "ran"


def test_every_parameter_needs_a_schema() -> None:
    with pytest.raises(TypeError, match=r"parameters without a schema \['b'\]"):
        class Bad:
            @s.accepts(a=s.NAME)
            def m(self, a, b):
                pass


def test_schema_is_readable_for_docs() -> None:
    schema = s.schema_of(Api.call)
    assert schema is not None and schema["required"] == ["name"]
    assert set(schema["properties"]) == {"name", "count", "flag", "meta", "items", "doc", "dev",
                                         "timeout"}
