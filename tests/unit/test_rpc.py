"""The in-process transport behaves like the wire: serializer, errors, versions."""

from __future__ import annotations

import threading

import pytest

from stackcore import conf, exception, rpc
from stackcore.rpc import Target


class _OwnInvalid(exception.Invalid):
    """An error class of a family's or a driver's own module, unknown to stackcore.exception."""


class Endpoint:
    target = Target("calc", version="1.3")

    def __init__(self) -> None:
        self.cast_done = threading.Event()
        self.cast_value = None

    def add(self, a: int, b: int) -> int:
        return a + b

    def fail(self, ident: str) -> None:
        raise exception.NotFound("thing", ident)

    def crash(self) -> None:
        raise ZeroDivisionError("boom")

    def refuse_own(self) -> None:
        raise _OwnInvalid("size", "is too large", 7)

    def remember(self, value: int) -> None:
        self.cast_value = value
        self.cast_done.set()

    def give_set(self) -> object:
        return {1, 2}


@pytest.fixture(params=["inprocess"])
def transport(request):
    t = rpc.get_transport(conf.load(overrides={"DEFAULT": {"transport_url": "inprocess://"}}))
    yield t
    t.close()


def test_call_returns_result(transport) -> None:
    server = transport.serve(Target("calc", "h1"), Endpoint())
    assert transport.client(Target("calc", "h1", "1.2")).call("add", a=2, b=3) == 5
    server.stop()


def test_stackcore_errors_keep_class_and_attributes(transport) -> None:
    transport.serve(Target("calc", "h1"), Endpoint())
    with pytest.raises(exception.NotFound) as caught:
        transport.client(Target("calc", "h1")).call("fail", ident="x1")
    assert caught.value.kind == "thing" and caught.value.ident == "x1"


def test_own_error_classes_arrive_as_their_nearest_known_base(transport) -> None:
    transport.serve(Target("calc", "h1"), Endpoint())
    with pytest.raises(exception.Invalid) as caught:
        transport.client(Target("calc", "h1")).call("refuse_own")
    assert (type(caught.value), caught.value.kwargs.get("field"), str(caught.value)) == \
        (exception.Invalid, "size", "invalid size: is too large"), caught.value.kwargs


def test_foreign_errors_become_remote_error(transport) -> None:
    transport.serve(Target("calc", "h1"), Endpoint())
    with pytest.raises(exception.RemoteError, match="ZeroDivisionError: boom"):
        transport.client(Target("calc", "h1")).call("crash")


def test_newer_minor_version_refused(transport) -> None:
    transport.serve(Target("calc", "h1"), Endpoint())
    with pytest.raises(exception.RPCVersionError, match="serves API 1.3, caller needs 1.4"):
        transport.client(Target("calc", "h1", "1.4")).call("add", a=1, b=1)
    with pytest.raises(exception.RPCVersionError):
        transport.client(Target("calc", "h1", "2.0")).call("add", a=1, b=1)


def test_payload_that_would_not_survive_the_wire_is_refused(transport) -> None:
    transport.serve(Target("calc", "h1"), Endpoint())
    client = transport.client(Target("calc", "h1"))
    with pytest.raises(exception.RPCError, match=r"\$\.a is a set"):
        client.call("add", a={1}, b=2)
    with pytest.raises(exception.RPCError, match="does not survive the wire"):
        client.call("give_set")


def test_unknown_and_private_methods_refused(transport) -> None:
    transport.serve(Target("calc", "h1"), Endpoint())
    client = transport.client(Target("calc", "h1"))
    with pytest.raises(exception.RPCError, match="no RPC method 'nothing'"):
        client.call("nothing")
    with pytest.raises(exception.RPCError, match="no RPC method '__init__'"):
        client.call("__init__")


def test_cast_runs_asynchronously(transport) -> None:
    endpoint = Endpoint()
    transport.serve(Target("calc", "h1"), endpoint)
    transport.client(Target("calc", "h1")).cast("remember", value=7)
    assert endpoint.cast_done.wait(60)
    assert endpoint.cast_value == 7


def test_no_listener_is_an_error(transport) -> None:
    with pytest.raises(exception.RPCError, match="no service is listening on calc.h9"):
        transport.client(Target("calc", "h9")).call("add", a=1, b=2)


def test_prepare_targets_one_server(transport) -> None:
    class Other(Endpoint):
        def add(self, a: int, b: int) -> int:
            return -1

    transport.serve(Target("calc", "h1"), Endpoint())
    transport.serve(Target("calc", "h2"), Other())
    client = transport.client(Target("calc"))
    assert client.prepare(server="h1").call("add", a=1, b=1) == 2
    assert client.prepare(server="h2").call("add", a=1, b=1) == -1
