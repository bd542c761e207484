"""RPC over a real RabbitMQ behaves exactly like in-process."""

from __future__ import annotations

import threading
import uuid

import pytest

from stackcore import conf, exception, rpc
from stackcore.rpc import Target
from tests.conftest import backend_env

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


def test_cloud_over_rabbit(make_cloud, image_file) -> None:
    url = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    cloud = make_cloud(fake_hosts=1, overrides={"DEFAULT": {"transport_url": url}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("rabbit", "small", "img")
    assert server.status == "ACTIVE"
    assert cloud.compute.stop_server(server.id).status == "STOPPED"
    cloud.compute.delete_server(server.id)
