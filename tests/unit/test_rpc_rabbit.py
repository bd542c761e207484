"""RPC over a real RabbitMQ behaves exactly like in-process."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from stackcore import conf, exception, rpc
from stackcore.rpc import Target
from tests.conftest import backend_env, wait_until

pytestmark = [pytest.mark.rabbit, pytest.mark.real]


class Endpoint:
    target = Target("calc", version="1.1")

    def __init__(self) -> None:
        self.seen = threading.Event()

    def add(self, a: int, b: int) -> int:
        return a + b

    def fail(self) -> None:
        raise exception.Invalid("size", "too big", 5)

    def note(self) -> None:
        self.seen.set()


@pytest.fixture
def transport():
    url = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    t = rpc.get_transport(conf.load(overrides={"DEFAULT": {"transport_url": url,
                                                           "rpc_call_timeout": 20}}))
    yield t
    t.close()


def test_call_cast_and_errors_over_rabbit(transport) -> None:
    topic = f"calc-{uuid.uuid4().hex[:8]}"
    endpoint = Endpoint()
    endpoint.target = Target(topic, version="1.1")
    server = transport.serve(Target(topic, "h1"), endpoint)
    try:
        client = transport.client(Target(topic, "h1", "1.0"))
        assert client.call("add", a=20, b=22) == 42
        with pytest.raises(exception.Invalid) as caught:
            client.call("fail")
        assert caught.value.field == "size"
        with pytest.raises(exception.RPCVersionError):
            transport.client(Target(topic, "h1", "1.5")).call("add", a=1, b=1)
        client.cast("note")
        assert endpoint.seen.wait(10)
    finally:
        server.stop()


def test_cloud_over_rabbit(make_cloud, image_file, rabbit_url) -> None:
    # a virtual host of its own: the services' topics (scheduler, compute.HOST) are fixed
    cloud = make_cloud(fake_hosts=1, overrides={"DEFAULT": {"transport_url": rabbit_url}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("rabbit", "small", "img")
    assert server.status == "ACTIVE"
    assert cloud.compute.stop_server(server.id).status == "STOPPED"
    cloud.compute.delete_server(server.id)


def test_a_call_made_before_its_server_listens_is_delivered_once_it_does(
        transport, caplog) -> None:
    """After a broker restart a service may be connected but not yet consuming: the broker
    returns the (mandatory) call and the client sends it again until a queue takes it."""
    topic = f"late-{uuid.uuid4().hex[:8]}"
    endpoint = Endpoint()
    endpoint.target = Target(topic, version="1.1")
    result: list[object] = []

    def caller() -> None:
        try:
            result.append(transport.client(Target(topic, "h1", "1.0")).call("add", a=40, b=2))
        except Exception as err:
            result.append(err)

    caplog.set_level("INFO", logger="stackcore.rpc.messaging")
    thread = threading.Thread(target=caller)
    thread.start()
    wait_until(lambda: any("no queue took it" in r.getMessage() for r in caplog.records),
               timeout=20, what="the client's log line that no queue took the call")
    server = transport.serve(Target(topic, "h1"), endpoint)
    try:
        thread.join(30)
        assert result == [42], f"the call made before its server listened returned {result}"
    finally:
        server.stop()


def test_a_call_no_service_takes_fails_within_its_timeout_naming_it() -> None:
    url = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    t = rpc.get_transport(conf.load(overrides={"DEFAULT": {"transport_url": url,
                                                           "rpc_call_timeout": 2}}))
    topic = f"nobody-{uuid.uuid4().hex[:8]}"
    try:
        started = time.monotonic()
        with pytest.raises(exception.RPCError) as caught:
            t.client(Target(topic, "h1", "1.0")).call("add", a=1, b=1)
        took = time.monotonic() - started
    finally:
        t.close()
    assert "no service consumes" in str(caught.value) and topic in str(caught.value), \
        str(caught.value)
    assert took < 2 + 10, f"the call took {took:.1f} s with rpc_call_timeout 2"
