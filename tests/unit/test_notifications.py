"""Notifications: the events the managers emit at each lifecycle point, their payloads and
their schemas, captured from oslo.messaging's ``log`` driver (the same message a broker
consumer gets: publisher_id, event_type, priority, payload)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from stackcore import exception, notifications
from tests.conftest import wait_until
from tests.unit.volume.conftest import manager_of

CONNECTOR = {"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1993-08.org.debian:01:x"}
LOG_DRIVER = {"notifications": {"driver": "log"}}


class Captured(logging.Handler):
    """Every message oslo.messaging's log driver writes (one JSON document per notification)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(json.loads(record.getMessage()))

    def of(self, *prefixes: str) -> list[dict[str, Any]]:
        """The messages of event types starting with ``prefixes`` (stats samples only when
        asked for by name: they come whenever a service reports)."""
        return [m for m in self.messages if m["event_type"].startswith(prefixes)
                and (not m["event_type"].endswith(".stats") or m["event_type"] in prefixes)]

    def types(self, *prefixes: str) -> list[str]:
        return [m["event_type"] for m in self.of(*prefixes)]

    def expect(self, prefixes: tuple[str, ...], expected: list[str]) -> None:
        """The events of ``prefixes`` are ``expected``, once as many have come: an API call
        returns when the database shows the result, the service's ``.end`` or ``.error``
        follows it."""
        wait_until(lambda: len(self.types(*prefixes)) >= len(expected), 10,
                   f"{expected} (so far {self.types(*prefixes)})")
        assert self.types(*prefixes) == expected, self.types(*prefixes)


@pytest.fixture
def database_url() -> None:
    """SQLite only: what is emitted does not depend on the database (kept cheap)."""
    return None


@pytest.fixture
def captured() -> Iterator[Captured]:
    logger = logging.getLogger("oslo.messaging.notification")
    handler = Captured()
    level = logger.level
    logger.setLevel(logging.DEBUG)  # the driver logs INFO; the test run's root is WARNING
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
    # Whatever a test did, every payload it caused is one of the documented schemas.
    for message in handler.messages:
        try:
            notifications.validate(message["payload"])
        except (jsonschema.ValidationError, KeyError) as err:
            pytest.fail(f"{message['event_type']} payload does not match its schema: {err}\n"
                        f"{json.dumps(message['payload'], indent=1)}")


@pytest.fixture
def vcloud(make_cloud: Any) -> Any:
    """A cloud running only the volume service; ``fake={...}`` sets [fake] options."""

    def make(fake: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
             ) -> Any:
        overrides = dict(overrides or {})
        if fake:
            overrides["fake"] = fake
        return make_cloud(services=("volume",), overrides=overrides)

    return make


def _server_cloud(make_cloud: Any, image_file: str, **overrides: Any) -> Any:
    cloud = make_cloud(fake_hosts=1, overrides={**LOG_DRIVER, **overrides})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    return cloud


def test_server_boot_and_delete(make_cloud, image_file, captured) -> None:
    cloud = _server_cloud(make_cloud, image_file)
    server = cloud.compute.create_server("web", "small", "img")

    # each build and delete is followed by a stats report of the host: sampled
    def used_after(event_type: str) -> list[int]:
        found = captured.of(event_type)
        index = captured.messages.index(found[0]) if found else len(captured.messages)
        return [m["payload"]["vcpus_used"] for m in captured.messages[index:]
                if m["event_type"] == "compute.stats"]
    wait_until(lambda: used_after("instance.create.end"), 10, "a sample after the build")
    assert used_after("instance.create.end")[0] == 1, captured.of("compute.stats")
    cloud.compute.delete_server(server.id)
    wait_until(lambda: used_after("instance.delete.end"), 10, "a sample after the delete")
    assert used_after("instance.delete.end")[0] == 0, captured.of("compute.stats")
    captured.expect(("instance.",), [
        "instance.create.start", "instance.create.end",
        "instance.delete.start", "instance.delete.end"])
    create_start, create_end, delete_start, delete_end = captured.of("instance.")
    for message in captured.of("instance."):
        assert message["publisher_id"] == "stackcore-compute:compute-1", message
        assert message["priority"] == "INFO", message
        payload = message["payload"]
        assert payload["uuid"] == server.id and payload["name"] == "web", payload
        assert payload["payload_version"] == "1.0", payload
        # the request that asked for it: the embedded default's admin, one request id each
        assert payload["context"]["project_id"] == "admin", payload
        assert payload["context"]["request_id"].startswith("req-"), payload
    assert create_start["payload"]["vm_state"] == "building"
    assert create_end["payload"]["vm_state"] == "active"
    assert create_end["payload"]["launched_at"] is not None
    assert (create_start["payload"]["context"]["request_id"]
            == create_end["payload"]["context"]["request_id"])
    assert delete_start["payload"]["task_state"] == "deleting"
    assert delete_end["payload"]["vm_state"] == "deleted"
    assert delete_end["payload"]["deleted_at"] is not None
    sample = captured.of("compute.stats")[-1]
    assert sample["priority"] == "SAMPLE" and sample["payload"]["host"] == "compute-1", sample


def test_spawn_failure_is_an_error_event_with_the_fault(make_cloud, image_file,
                                                         captured) -> None:
    cloud = _server_cloud(make_cloud, image_file,
                          fake_hypervisor={"fail_on": ["spawn"]})
    server = cloud.compute.create_server("doomed", "small", "img")
    assert server.status == "ERROR"
    captured.expect(("instance.",), ["instance.create.start", "instance.create.error"])
    error = captured.of("instance.create.error")[0]
    assert error["priority"] == "ERROR"
    assert error["payload"]["vm_state"] == "error", error
    fault = error["payload"]["fault"]
    assert fault["exc_class"] == "DriverError" and fault["step"] == "spawn", fault
    assert "injected failure in fake spawn" in fault["message"], fault


def test_volume_lifecycle(vcloud, captured) -> None:
    cloud = vcloud(overrides=dict(LOG_DRIVER))
    vol = cloud.volume.create(1, name="data")
    snap = cloud.volume.create_snapshot(vol.id, name="s")
    cloud.volume.delete_snapshot(snap.id)
    cloud.volume.extend(vol.id, 2)
    info = cloud.volume.attach(vol.id, CONNECTOR, mountpoint="/dev/vdb")
    cloud.volume.detach(vol.id, info["attachment_id"])
    cloud.volume.delete(vol.id)
    captured.expect(("volume.", "snapshot."), [
        "volume.create.start", "volume.create.end",
        "snapshot.create.start", "snapshot.create.end",
        "snapshot.delete.start", "snapshot.delete.end",
        "volume.resize.start", "volume.resize.end",
        "volume.attach.start", "volume.attach.end",
        "volume.detach.start", "volume.detach.end",
        "volume.delete.start", "volume.delete.end",
    ])
    by_type = {m["event_type"]: m["payload"] for m in captured.messages}
    host = manager_of(cloud).host
    assert all(m["publisher_id"] == f"stackcore-volume:{host}"
               for m in captured.of("volume.", "snapshot.")), captured.messages
    assert by_type["volume.create.start"]["status"] == "creating"
    assert by_type["volume.create.end"]["status"] == "available"
    assert by_type["volume.create.end"]["display_name"] == "data"
    assert by_type["snapshot.create.end"]["volume_id"] == vol.id
    assert by_type["snapshot.delete.end"]["status"] == "deleted"
    assert (by_type["volume.resize.start"]["size"], by_type["volume.resize.end"]["size"]) \
        == (1, 2)
    attached = by_type["volume.attach.end"]
    assert attached["status"] == "in-use", attached
    assert attached["attachments"] == [{"id": info["attachment_id"], "instance_uuid": None,
                                        "mountpoint": "/dev/vdb",
                                        "attach_status": "attached"}], attached
    assert by_type["volume.detach.end"]["attachments"][0]["attach_status"] == "detached"
    assert by_type["volume.delete.end"]["status"] == "deleted"
    # nothing of the connection (the initiator, the export) is in any payload
    for message in captured.messages:
        text = json.dumps(message["payload"])
        assert CONNECTOR["initiator"] not in text and "connection_info" not in text, text
    cloud.tick()
    sample = captured.of("volume.stats")[-1]
    assert sample["priority"] == "SAMPLE" and sample["payload"]["reporting"] is True, sample
    assert [p["pool_name"] for p in sample["payload"]["pools"]] == ["fake"], sample
    assert sample["payload"]["context"]["request_id"] is None  # the service's own work


def test_volume_driver_failure_is_an_error_event(vcloud, captured) -> None:
    cloud = vcloud(fake={"fake_fail_on": ["create_volume"]}, overrides=dict(LOG_DRIVER))
    vol = cloud.volume.create(1)
    assert vol.status == "error"
    captured.expect(("volume.",), ["volume.create.start", "volume.create.error"])
    error = captured.of("volume.create.error")[0]
    assert error["priority"] == "ERROR"
    payload = error["payload"]
    assert payload["id"] == vol.id and payload["status"] == "error", payload
    assert payload["fault"]["step"] == "create_volume", payload
    assert "injected failure in fake create_volume" in payload["fault"]["message"], payload


def test_backup_lifecycle(vcloud, captured, tmp_path) -> None:
    """Cinder's backup events from the volume service: create, restore (naming the volume
    written), delete, and an error with the fault when the data does not come back."""
    cloud = vcloud(overrides={**LOG_DRIVER,
                              "DEFAULT": {"state_path": str(tmp_path / "state")},
                              "backup": {"backup_driver": "posix"},
                              "backup_posix": {"backup_posix_path": str(tmp_path / "b")}})
    vol = cloud.volume.create(1, name="data")
    # Each call returns once the database shows its result; its .end is sent right after
    # that commit, so the next call's .start may overtake it: await each step's events.
    backup = cloud.volume.create_backup(vol.id, name="nightly")
    expected = ["backup.create.start", "backup.create.end"]
    captured.expect(("backup.",), expected)
    restored = cloud.volume.restore_backup(backup.id)
    expected += ["backup.restore.start", "backup.restore.end"]
    captured.expect(("backup.",), expected)
    cloud.volume.delete_backup(backup.id)
    captured.expect(("backup.",), [*expected, "backup.delete.start", "backup.delete.end"])
    by_type = {m["event_type"]: m["payload"] for m in captured.of("backup.")}
    host = manager_of(cloud).host
    assert all(m["publisher_id"] == f"stackcore-volume:{host}"
               for m in captured.of("backup.")), captured.messages
    start, end = by_type["backup.create.start"], by_type["backup.create.end"]
    assert (start["id"], start["status"], start["volume_id"]) == \
        (backup.id, "creating", vol.id), start
    assert (end["status"], end["checksum"], end["display_name"], end["size_bytes"]) == \
        ("available", backup.checksum, "nightly", 1024**3), end
    assert end["stored_bytes"] == backup.stored_bytes and end["backup_driver"] == "posix", end
    assert by_type["backup.restore.start"]["status"] == "restoring", by_type
    assert {by_type[f"backup.restore.{p}"]["restore_volume_id"] for p in ("start", "end")} \
        == {restored.id}, by_type
    assert by_type["backup.restore.end"]["status"] == "available", by_type
    assert by_type["backup.delete.start"]["status"] == "deleting", by_type
    deleted = by_type["backup.delete.end"]
    assert deleted["status"] == "deleted" and deleted["deleted_at"], deleted
    for message in captured.of("backup."):
        assert "location" not in message["payload"] and \
            str(tmp_path / "b") not in json.dumps(message["payload"]), message

    # data that does not verify: backup.restore.error with the fault, at priority ERROR
    second = cloud.volume.create_backup(vol.id)
    stored = tmp_path / "b" / f"backup-{second.id}"
    with open(stored, "r+b") as handle:
        handle.write(b"corrupted")
    target = cloud.volume.create(1)
    cloud.volume.restore_backup(second.id, target.id)
    captured.expect(("backup.restore.",), [
        "backup.restore.start", "backup.restore.end",
        "backup.restore.start", "backup.restore.error"])
    error = captured.of("backup.restore.error")[0]
    assert error["priority"] == "ERROR", error
    payload = error["payload"]
    assert (payload["id"], payload["restore_volume_id"], payload["status"]) == \
        (second.id, target.id, "error"), payload
    assert payload["fault"]["step"] == "verify" and \
        "is not the data backed up" in payload["fault"]["message"], payload


def test_noop_is_the_default_and_sends_nothing(vcloud, captured) -> None:
    cloud = vcloud()
    assert cloud.notifier.enabled is False
    cloud.volume.create(1)
    assert captured.messages == []


def test_messaging_driver_without_a_broker_is_refused(vcloud) -> None:
    with pytest.raises(exception.ConfigError, match=r"\[notifications\] driver = messaging "
                       r"needs a broker"):
        vcloud(overrides={"notifications": {"driver": "messaging"}})


def test_an_unusable_notification_url_is_refused_without_its_password(vcloud) -> None:
    with pytest.raises(exception.ConfigError) as caught:
        vcloud(overrides={"notifications": {"driver": "messaging",
                                            "transport_url": "nosuch://u:hunter2@host/"}})
    assert "[notifications] transport_url (nosuch://****) cannot be used" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("event_type", notifications.EVENT_TYPES)
def test_every_schema_is_a_valid_json_schema(event_type) -> None:
    schema = notifications.schema(event_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["event_type"] == {"const": event_type}


def test_unknown_event_type_is_named() -> None:
    with pytest.raises(KeyError, match="no notification event type 'volume.explode.end'"):
        notifications.validate({"event_type": "volume.explode.end"})


def test_the_doc_lists_every_event_type_and_field() -> None:
    """doc/source/notifications.rst stays true: each event type (or its family, written
    ``volume.create.*``) and each field a schema has is named in it."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "doc/source/notifications.rst").read_text()
    missing = []
    for event_type in notifications.EVENT_TYPES:
        family = event_type.rsplit(".", 1)[0] + ".*"
        if f"``{event_type}``" not in doc and f"``{family}``" not in doc:
            missing.append(event_type)
        for name in notifications.schema(event_type)["properties"]:
            if f"``{name}``" not in doc and f'"{name}"' not in doc:
                missing.append(f"{event_type}: {name}")
    assert not missing, f"not in doc/source/notifications.rst: {missing}"


def test_a_failed_stats_report_is_sampled_as_not_reporting(vcloud, captured) -> None:
    cloud = vcloud(overrides=dict(LOG_DRIVER))
    cloud.conf.set_override("fake_fail_on", ["get_volume_stats"], group="fake")
    cloud.tick()
    sample = captured.of("volume.stats")[-1]["payload"]
    assert sample["reporting"] is False, sample
    assert "injected failure in fake get_volume_stats" in sample["report_error"], sample
    assert "pools" not in sample, sample


def test_a_notification_that_fails_never_fails_the_operation(caplog) -> None:
    from stackcore.notifications.logdriver import LogNotifier

    notifier = notifications.Notifier(LogNotifier("stackcore")).prepare("volume", "h1")

    def broken() -> dict[str, Any]:
        raise RuntimeError("database gone")

    with caplog.at_level(logging.ERROR, logger="stackcore.notifications"):
        notifier.info("volume.create.end", broken)  # must not raise
    assert "notification volume.create.end could not be sent" in caplog.text, caplog.text
