"""Notifications on a real RabbitMQ: a Cloud whose services talk over RabbitMQ (RPC and, by
default, notifications: ``[notifications] transport_url`` unset) runs a server, a volume, a
network and an image through their lifecycle; an oslo.messaging notification listener on the
test's own topic - a consumer as Ceilometer would be one - receives every event in order, each
payload valid against its schema, each message with its priority and publisher (the network
and image events come from those families' APIs, the stats samples from the services)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import stackcore
from stackcore import notifications
from tests.conftest import backend_env, wait_until

pytestmark = [pytest.mark.real, pytest.mark.rabbit]

CONNECTOR = {"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1993-08.org.debian:01:x"}


class Collector:
    """Listener endpoint: one method per priority it consumes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, str, dict[str, Any]]] = []

    def _add(self, priority: str, publisher_id: str, event_type: str,
             payload: dict[str, Any]) -> None:
        with self.lock:
            self.received.append((priority, publisher_id, event_type, payload))

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self._add("info", publisher_id, event_type, payload)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: Any) -> None:
        self._add("error", publisher_id, event_type, payload)

    def sample(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
               metadata: Any) -> None:
        self._add("sample", publisher_id, event_type, payload)

    def types(self) -> list[str]:
        with self.lock:
            return [e for _, _, e, _ in self.received if not e.endswith(".stats")]


@pytest.fixture
def listener() -> Iterator[tuple[str, Collector]]:
    import kombu
    import oslo_messaging

    url = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    topic = f"notif-{uuid.uuid4().hex[:8]}"
    from oslo_messaging import opts as messaging_opts

    conf = cfg.ConfigOpts()
    conf(args=[], project="test-notifications", default_config_files=[])
    for group, options in messaging_opts.list_opts():
        conf.register_opts(list(options), group=group)
    # one worker: messages handled in the order of their queue (the order asserted below)
    conf.set_override("executor_thread_pool_size", 1)
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    collector = Collector()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [collector], executor="threading")
    server.start()
    try:
        yield topic, collector
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        # the notification queues are durable: leave none behind in the test broker
        # (kombu names oslo.messaging's rabbit:// scheme amqp://)
        with kombu.Connection("amqp://" + url.split("://", 1)[1]) as connection:
            channel = connection.channel()
            for priority in ("info", "error", "sample"):
                channel.queue_delete(f"{topic}.{priority}")


def test_lifecycle_events_consumed_from_rabbitmq(listener, image_file) -> None:
    topic, collector = listener
    url = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    cloud = stackcore.Cloud(fake_hosts=1, overrides={
        "DEFAULT": {"transport_url": url, "periodic_interval": 3600},
        "notifications": {"driver": "messaging", "topics": [topic]},
    })
    try:
        cloud.compute.create_flavor("small", 1, 512, 1)
        cloud.compute.register_image("img", image_file)
        server = cloud.compute.create_server("web", "small", "img")
        cloud.compute.delete_server(server.id)
        vol = cloud.volume.create(1, name="data")
        attachment = cloud.volume.attach(vol.id, CONNECTOR)["attachment_id"]
        cloud.volume.detach(vol.id, attachment)
        cloud.volume.delete(vol.id)
        net = cloud.network.create_network("blue")
        cloud.network.delete_network(net.id)
        image = cloud.image.create("up")
        cloud.image.upload(image.id, b"\0" * 4096)
        cloud.image.delete(image.id)
        cloud.tick()
        expected = [
            "instance.create.start", "instance.create.end",
            "instance.delete.start", "instance.delete.end",
            "volume.create.start", "volume.create.end",
            "volume.attach.start", "volume.attach.end",
            "volume.detach.start", "volume.detach.end",
            "volume.delete.start", "volume.delete.end",
            "network.create.start", "network.create.end",
            "network.delete.start", "network.delete.end",
            "image.create", "image.prepare", "image.upload", "image.activate", "image.delete",
        ]
        wait_until(lambda: len(collector.types()) >= len(expected), 30,
                   f"{len(expected)} lifecycle notifications on {topic}")
        wait_until(lambda: {"compute.stats", "volume.stats", "agent.stats",
                            "segment.stats"} <= {
            e for _, _, e, _ in list(collector.received)}, 30, "stats samples")
    finally:
        cloud.close()
    # one queue per priority: the order holds within a priority, and every event here is INFO
    assert collector.types() == expected, collector.types()
    for priority, publisher_id, event_type, payload in collector.received:
        notifications.validate(payload)
        assert payload["event_type"] == event_type
        assert priority == ("sample" if event_type.endswith(".stats") else "info"), \
            (priority, event_type)
        service = {"instance": "compute", "snapshot": "volume", "network": "network-api",
                   "image": "image-api", "agent": "network", "segment": "network"}.get(
            event_type.split(".")[0], event_type.split(".")[0])
        assert publisher_id.startswith(f"stackcore-{service}:"), (publisher_id, event_type)
    payloads = {e: p for _, _, e, p in collector.received}
    assert payloads["instance.create.end"]["uuid"] == server.id
    assert payloads["instance.create.end"]["vm_state"] == "active"
    assert payloads["volume.attach.end"]["attachments"][0]["id"] == attachment
    assert payloads["volume.delete.end"]["status"] == "deleted"
    assert payloads["volume.create.start"]["context"]["request_id"].startswith("req-")
    assert payloads["network.create.end"]["id"] == net.id
    assert payloads["image.activate"]["status"] == "active"
