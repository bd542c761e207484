"""Glance's image notifications from cloud.image: image.create, image.update, image.prepare,
image.upload, image.activate, image.delete (each after its change committed), image.upload at
priority ERROR with the fault for a refused upload, nothing for a call refused before it
changed anything; every payload validated against its schema by the ``captured`` fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackcore import exception
from stackcore.project import RequestContext
from tests.unit.test_notifications import LOG_DRIVER, captured  # noqa: F401 (fixture)

ALICE = RequestContext(user_id="alice", project_id="project-a", roles=["member"])


@pytest.fixture
def database_url() -> None:
    """SQLite only: what is emitted does not depend on the database (kept cheap)."""
    return None


def test_image_lifecycle(make_cloud: Any, tmp_path: Path, captured) -> None:  # noqa: F811
    cloud = make_cloud(services=(), overrides={**LOG_DRIVER,
                                              "DEFAULT": {"state_path":
                                                          str(tmp_path / "state")}})
    api = cloud.as_project(ALICE).image
    image = api.create("one")
    api.update(image.id, name="uno")
    data = b"\0" * 4096
    api.upload(image.id, data, size=len(data))
    assert b"".join(api.download(image.id)) == data
    partial = api.download(image.id)
    next(iter(partial))
    partial.close()  # type: ignore[attr-defined]  # dropped half-way: no image.send
    cloud.image.deactivate(image.id)  # admin rules
    cloud.image.reactivate(image.id)
    api.delete(image.id)
    captured.expect(("image.",), ["image.create", "image.update", "image.prepare",
                                  "image.upload", "image.activate", "image.send",
                                  "image.update",
                                  "image.update", "image.delete"])
    created = captured.of("image.create")[0]
    assert created["publisher_id"].startswith("stackcore-image-api:"), created
    assert created["payload"]["id"] == image.id, created
    assert created["payload"]["context"]["project_id"] == "project-a", created
    assert captured.of("image.prepare")[0]["payload"]["status"] == "saving"
    active = captured.of("image.activate")[0]["payload"]
    assert (active["status"], active["size_bytes"], active["name"]) == ("active", 4096, "uno"), \
        active
    assert captured.of("image.delete")[0]["payload"]["status"] == "deleted"
    sent = captured.of("image.send")[0]["payload"]
    assert (sent["image_id"], sent["owner_id"], sent["bytes_sent"]) == (
        image.id, "project-a", 4096), sent
    assert sent["context"]["user_id"] == "alice", sent


def test_refused_upload_is_an_error_and_bad_input_emits_nothing(
        make_cloud: Any, tmp_path: Path, captured) -> None:  # noqa: F811
    cloud = make_cloud(services=(), overrides={**LOG_DRIVER,
                                              "DEFAULT": {"state_path":
                                                          str(tmp_path / "state")}})
    with pytest.raises(exception.Invalid):
        cloud.image.create("x", disk_format="nope")
    image = cloud.image.create("two")
    with pytest.raises(exception.Invalid):
        cloud.image.upload(image.id, 42)  # not data: refused before anything changed
    with pytest.raises(exception.Invalid, match="sha256"):
        cloud.image.upload(image.id, b"abc", sha256="0" * 64)
    captured.expect(("image.",), ["image.create", "image.prepare", "image.upload"])
    failed = captured.of("image.upload")[0]
    assert failed["priority"] == "ERROR", failed
    assert failed["payload"]["id"] == image.id, failed
    assert failed["payload"]["fault"]["exc_class"] == "Invalid", failed
