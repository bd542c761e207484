"""cloud.image: create -> upload (checksum verified, format inspected on the stored bytes) ->
active; download; visibility per project; protected; deactivate/reactivate; refusals that keep
nothing. On the embedded SQLite and on PostgreSQL (the ``make_cloud`` databases)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import exception
from stackcore.project import RequestContext
from tests.conftest import wait_until

A = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
B = RequestContext(user_id="bob", project_id="project-b", roles=["member"])


@pytest.fixture
def icloud(make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> stackcore.Cloud:
    return make_cloud(overrides={"DEFAULT": {"state_path": str(tmp_path / "state")}})


def _qcow2(tmp_path: Path, name: str = "disk.qcow2", *extra: str) -> bytes:
    path = tmp_path / name
    subprocess.run(["qemu-img", "create", "-f", "qcow2", *extra, str(path), "2M"], check=True,
                   capture_output=True)
    return path.read_bytes()


def _store_locations(cloud: stackcore.Cloud) -> list[str]:
    return cloud.image.stores["file"].list_backend_objects()


def test_create_upload_download(icloud: stackcore.Cloud, tmp_path: Path) -> None:
    data = _qcow2(tmp_path)
    image = icloud.image.create("cirros", disk_format="qcow2", properties={"os": "linux"})
    assert (image.status, image.size_bytes, image.sha256) == ("queued", 0, None), image
    assert [i.id for i in icloud.compute.list_images()] == [], "a queued image is bootable"
    digest = hashlib.sha256(data).hexdigest()
    active = icloud.image.upload(image.id, io.BytesIO(data), sha256=digest, size=len(data))
    assert (active.status, active.size_bytes, active.sha256, active.store) == (
        "active", len(data), digest, "file"), active
    assert active.virtual_size == 2 * 1024 * 1024, active
    assert b"".join(icloud.image.download(image.id)) == data
    assert b"".join(icloud.image.download(image.id, offset=100, length=50)) == data[100:150]
    booted = icloud.compute.get_image(image.id)  # servers boot from the store's file
    assert booted.path and Path(booted.path).read_bytes() == data, booted
    assert icloud.image.get(image.id) == active


def test_upload_from_bytes_and_listing(icloud: stackcore.Cloud) -> None:
    image = icloud.image.create("raw-one")
    icloud.image.upload(image.id, b"\0" * 4096)
    listed = icloud.image.list_images(status="active")
    assert [(i.name, i.size_bytes) for i in listed] == [("raw-one", 4096)], listed
    assert icloud.image.list_images(status="queued") == []


def test_checksum_mismatch_keeps_nothing(icloud: stackcore.Cloud) -> None:
    image = icloud.image.create("bad-sum")
    with pytest.raises(exception.Invalid, match="sha256") as err:
        icloud.image.upload(image.id, b"\0" * 1024, sha256="0" * 64)
    assert err.value.kwargs["field"] == "sha256", err.value.kwargs
    assert icloud.image.get(image.id).status == "queued"
    assert _store_locations(icloud) == []
    assert icloud.image.upload(image.id, b"\0" * 1024).status == "active"  # may retry


def test_unsafe_qcow2_is_refused_on_the_stored_bytes(icloud: stackcore.Cloud,
                                                     tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"do not read")
    data = _qcow2(tmp_path, "evil.qcow2", "-b", str(secret), "-F", "raw")
    image = icloud.image.create("evil", disk_format="qcow2")
    with pytest.raises(exception.Invalid, match="backing_file"):
        icloud.image.upload(image.id, io.BytesIO(data))
    assert icloud.image.get(image.id).status == "queued"
    assert _store_locations(icloud) == [], "the refused image stayed in the store"


def test_declared_format_must_be_the_content(icloud: stackcore.Cloud, tmp_path: Path) -> None:
    image = icloud.image.create("liar", disk_format="raw")
    with pytest.raises(exception.Invalid, match="disk_format"):
        icloud.image.upload(image.id, _qcow2(tmp_path))
    assert _store_locations(icloud) == []


def test_size_cap(make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    cloud = make_cloud(overrides={"DEFAULT": {"state_path": str(tmp_path / "s")},
                                  "image": {"image_size_cap": 1000}})
    image = cloud.image.create("big")
    with pytest.raises(exception.Invalid, match="size limit of 1000 bytes"):
        cloud.image.upload(image.id, io.BytesIO(b"x" * 5000))
    assert cloud.image.get(image.id).status == "queued"
    assert _store_locations(cloud) == []


def test_formats_validated_by_schema(icloud: stackcore.Cloud) -> None:
    for kwargs, field in (({"disk_format": "exe"}, "disk_format"),
                          ({"container_format": "ova"}, "container_format"),
                          ({"visibility": "shared"}, "visibility")):
        with pytest.raises(exception.Invalid) as err:
            icloud.image.create("x", **kwargs)
        assert err.value.kwargs["field"] == field, (kwargs, err.value.kwargs)
    assert icloud.image.list_images() == []


def test_upload_states(icloud: stackcore.Cloud) -> None:
    image = icloud.image.create("once")
    icloud.image.upload(image.id, b"\0" * 512)
    with pytest.raises(exception.InvalidState, match="only a queued or killed image"):
        icloud.image.upload(image.id, b"\0" * 512)
    with pytest.raises(exception.Invalid, match="read-only|not one of"):
        icloud.image.upload(icloud.image.create("web").id, b"x", store="web")
    with pytest.raises(exception.Invalid) as err:
        icloud.image.upload(icloud.image.create("obj").id, 42)
    assert err.value.kwargs["field"] == "data", err.value.kwargs


def test_visibility_per_project(icloud: stackcore.Cloud) -> None:
    a, b = icloud.as_project(A), icloud.as_project(B)
    private = a.image.create("a-private")
    a.image.upload(private.id, b"\0" * 512)
    assert private.project_id == "project-a"
    with pytest.raises(exception.NotFound):
        b.image.get(private.id)
    with pytest.raises(exception.NotFound):
        b.image.download(private.id)
    with pytest.raises(exception.NotFound):
        b.image.delete(private.id)
    assert [i.id for i in b.image.list_images()] == []
    with pytest.raises(exception.Forbidden, match="image:publicize"):
        a.image.create("a-public", visibility="public")
    public = icloud.image.create("shared", visibility="public")
    icloud.image.upload(public.id, b"\0" * 512)
    assert [i.id for i in b.image.list_images()] == [public.id]
    assert b"".join(b.image.download(public.id)) == b"\0" * 512
    with pytest.raises(exception.Forbidden, match="image:delete"):
        b.image.delete(public.id)
    with pytest.raises(exception.Forbidden, match="image:list:all_projects"):
        b.image.list_images(all_projects=True)
    assert {i.id for i in icloud.image.list_images(all_projects=True)} == {private.id, public.id}


def test_protected_images_are_not_deleted(icloud: stackcore.Cloud) -> None:
    image = icloud.image.create("keep", protected=True)
    icloud.image.upload(image.id, b"\0" * 512)
    with pytest.raises(exception.Conflict, match="protected"):
        icloud.image.delete(image.id)
    assert _store_locations(icloud) == [image.id]
    assert icloud.image.update(image.id, protected=False).protected is False
    icloud.image.delete(image.id)
    icloud.image.delete(icloud.image.create("never-uploaded").id)
    assert _store_locations(icloud) == []
    with pytest.raises(exception.NotFound):
        icloud.image.get(image.id)


def test_deactivate_and_reactivate(icloud: stackcore.Cloud) -> None:
    a = icloud.as_project(A)
    image = a.image.create("img")
    a.image.upload(image.id, b"\0" * 512)
    with pytest.raises(exception.Forbidden, match="image:deactivate"):
        a.image.deactivate(image.id)
    assert icloud.image.deactivate(image.id).status == "deactivated"
    with pytest.raises(exception.InvalidState, match="deactivated"):
        a.image.download(image.id)
    with pytest.raises(exception.NotFound):  # nothing new boots from it
        icloud.compute.get_image(image.id)
    assert icloud.image.reactivate(image.id).status == "active"
    assert b"".join(a.image.download(image.id)) == b"\0" * 512
    with pytest.raises(exception.InvalidState):
        icloud.image.deactivate(a.image.create("queued").id)


def test_registered_files_are_images_too(icloud: stackcore.Cloud, image_file: str) -> None:
    registered = icloud.compute.register_image("file-img", image_file, "raw")
    view = icloud.image.get(registered.id)
    assert (view.status, view.store, view.protected) == ("active", None, False), view
    assert b"".join(icloud.image.download(registered.id, length=10)) == b"\0" * 10


def test_store_stats(icloud: stackcore.Cloud) -> None:
    icloud.image.upload(icloud.image.create("s").id, b"\0" * 2048)
    (file_store,) = [s for s in icloud.image.list_stores() if s.name == "file"]
    assert (file_store.stats["used_bytes"], file_store.stats["image_count"]) == (2048, 1)


def test_bad_store_configuration_fails_start_up(make_cloud: Callable[..., stackcore.Cloud],
                                                tmp_path: Path) -> None:
    with pytest.raises(exception.PluginNotFound, match="nosuch"):
        make_cloud(overrides={"image": {"stores": ["file", "nosuch"]}})
    with pytest.raises(exception.ConfigError, match="default_store 'web'"):
        make_cloud(overrides={"image": {"stores": ["file"], "default_store": "web"}})
    cloud: Any = make_cloud(overrides={
        "DEFAULT": {"state_path": str(tmp_path / "s2")}, "image": {"stores": ["file", "web"]},
        "image_store_file": {"datadir": str(tmp_path / "images")}})
    cloud.image.upload(cloud.image.create("x").id, b"\0" * 512)
    assert os.listdir(tmp_path / "images") != [], "the store ignored its datadir option"


def test_images_servers_use_are_not_deleted(make_cloud: Callable[..., stackcore.Cloud],
                                            tmp_path: Path) -> None:
    cloud = make_cloud(fake_hosts=1, overrides={"DEFAULT": {"state_path": str(tmp_path / "s")}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    image = cloud.image.create("boot")
    cloud.image.upload(image.id, b"\0" * 4096)
    server = cloud.compute.create_server("vm", "small", image.id)
    assert server.status == "ACTIVE", server
    with pytest.raises(exception.Conflict, match="used by 1 server"):
        cloud.image.delete(image.id)
    cloud.compute.delete_server(server.id)
    wait_until(lambda: cloud.compute.get_server(server.id, include_deleted=True).status
               == "DELETED", 30,
               f"server {server.id} deleted")
    with pytest.raises(exception.Conflict, match="cloud.image.delete"):
        cloud.compute.delete_image(image.id)
    cloud.image.delete(image.id)
    assert _store_locations(cloud) == []


def test_import_from_url(make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    from stackcore.testing.httpserver import FileServer

    cloud = make_cloud(overrides={"DEFAULT": {"state_path": str(tmp_path / "s")},
                                  "image": {"stores": ["file", "web"]},
                                  # the test server: loopback, any port
                                  "image_import": {"allowed_hosts": ["127.0.0.1"],
                                                   "allowed_ports": []}})
    data = _qcow2(tmp_path)
    with FileServer() as server:
        url = server.put("disk.qcow2", data)
        image = cloud.image.create("from-web", disk_format="qcow2")
        with pytest.raises(exception.Forbidden, match="image:import"):
            cloud.as_project(A).image.import_from_url(image.id, url)
        with pytest.raises(exception.NotFound):
            cloud.image.import_from_url(image.id, server.url("missing"))
        active = cloud.image.import_from_url(image.id, url)
    assert (active.status, active.store, active.size_bytes) == ("active", "file", len(data))
    assert active.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(cloud.image.download(image.id)) == data


def test_import_needs_a_web_store(icloud: stackcore.Cloud) -> None:
    with pytest.raises(exception.Invalid, match="add 'web'"):
        icloud.image.import_from_url(icloud.image.create("x").id, "http://127.0.0.1:1/x")
