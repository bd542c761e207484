"""``stackcore-client`` against a running multi-process deployment: the scheduler, a compute
and a volume service each a ``stackcore service`` process over RabbitMQ and PostgreSQL, the CLI
an API-only client of them (in this process through cliff's App, and once as its console
script)."""

from __future__ import annotations

import io
import json
import subprocess
import uuid

import pytest

from stackcore.client.app import ClientApp
from tests.conftest import wait_until
from tests.functional.reliability.services import BIN, ServiceProcess, write_config

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]


@pytest.fixture
def deployment(tmp_path, pg_url, rabbit_url):
    """One config for every process (they share state_path: the file image store's bytes
    are where the compute service reads them)."""
    config = write_config(tmp_path / "stackcore.conf", {
        "DEFAULT": {"transport_url": rabbit_url,
                    "report_interval": 1, "service_down_time": 5,
                    "state_path": tmp_path / "state"},
        "database": {"connection": pg_url},
        "compute": {"hosts": "cli-1"},
    })
    services = [ServiceProcess(name, config, tmp_path / "services.log")
                for name in ("scheduler", "compute", "volume")]
    try:
        for service in services:
            service.start()
        yield config
    finally:
        for service in services:
            service.stop()


def client(config: str, *argv: str) -> tuple[int, str, str]:
    """Run ``stackcore-client --config-file CONFIG ARGV...`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    status = ClientApp(stdout=out, stderr=err).run(["--config-file", config, *argv])
    return status, out.getvalue(), err.getvalue()


def ok(config: str, *argv: str) -> str:
    status, out, err = client(config, *argv)
    assert status == 0, f"stackcore-client {' '.join(argv)} exited {status}: {err}"
    return out


def test_resources_through_the_cli(deployment, tmp_path) -> None:
    config = deployment
    image = tmp_path / "image.raw"
    with open(image, "wb") as handle:
        handle.truncate(1024 * 1024)
    # The scheduler places only on a host whose stats it has (its first report, within a
    # report_interval of starting): what `host list` shows as reporting.
    hosts = wait_until(
        lambda: [(h["host"], h["up"], h["reporting"])
                 for h in json.loads(ok(config, "host", "list", "-f", "json"))
                 if h["reporting"]], 30, "compute host cli-1 reporting")
    assert hosts == [("cli-1", True, True)], hosts
    ok(config, "flavor", "create", "small", "--vcpus", "1", "--ram", "256", "--disk", "1")
    uploaded = json.loads(ok(config, "image", "create", "img", "--file", str(image),
                             "-f", "json"))
    assert (uploaded["status"], uploaded["size_bytes"]) == ("active", 1024 * 1024), uploaded

    status, out, err = client(config, "server", "create", "vm-1", "--flavor", "small",
                              "--image", "img", "--wait", "-f", "json")
    assert status == 0, err
    server = json.loads(out)
    assert (server["status"], server["task_state"], server["host"]) == \
        ("ACTIVE", None, "cli-1"), f"{server}\n{err}"
    # stderr is no terminal here: one plain line per state the wait saw, the last ACTIVE
    progress = err.splitlines()
    assert progress and all(line.startswith(f"server {server['id']}: ")
                            for line in progress), err
    assert progress[-1].split(": ", 1)[1].startswith("ACTIVE "), err

    listed = json.loads(ok(config, "server", "list", "-f", "json"))
    assert [(s["id"], s["name"], s["status"]) for s in listed] == \
        [(server["id"], "vm-1", "ACTIVE")], listed
    assert ok(config, "server", "list", "-c", "name", "-c", "status", "-f", "value") == \
        "vm-1 ACTIVE\n"

    status, out, err = client(config, "volume", "create", "1", "--name", "data", "--wait",
                              "-f", "json")
    assert status == 0, err
    volume = json.loads(out)
    assert (volume["status"], volume["size"], volume["name"]) == ("available", 1, "data"), \
        volume
    assert err.splitlines()[-1].startswith(f"volume {volume['id']}: available "), err
    attached = json.loads(ok(config, "server", "add", "volume", server["id"], volume["id"],
                             "-f", "json"))
    assert (attached["volume_id"], attached["device"]) == (volume["id"], "/dev/vdb"), attached
    shown = json.loads(ok(config, "server", "show", server["id"], "-f", "json"))
    assert shown["volumes"] == f"{volume['id']} /dev/vdb", shown
    assert ok(config, "volume", "show", volume["id"], "-c", "status", "-f", "value") == \
        "in-use\n"
    ok(config, "server", "remove", "volume", server["id"], volume["id"])
    assert ok(config, "volume", "show", volume["id"], "-c", "status", "-f", "value") == \
        "available\n"
    assert ok(config, "server", "stop", server["id"], "-c", "status", "-f", "value") == \
        "STOPPED\n"
    assert ok(config, "server", "start", server["id"], "-c", "status", "-f", "value") == \
        "ACTIVE\n"

    # the lifecycle actions (the fake driver declares every capability)
    def status_after(*action: str) -> str:
        return ok(config, "server", *action, server["id"], "-c", "status", "-f", "value")

    assert [status_after(*a) for a in (("pause",), ("unpause",), ("suspend",), ("resume",),
                                       ("rescue",), ("unrescue",))] == \
        ["PAUSED\n", "ACTIVE\n", "SUSPENDED\n", "ACTIVE\n", "RESCUED\n", "ACTIVE\n"]
    status, out, err = client(config, "server", "rebuild", server["id"], "--image", "img",
                              "--wait", "-c", "status", "-f", "value")
    assert (status, out) == (0, "ACTIVE\n"), err
    console = ok(config, "console", "log", "show", server["id"])
    assert console and ok(config, "console", "log", "show", server["id"], "--lines", "1") \
        == console.splitlines(keepends=True)[-1], console
    status, out, err = client(config, "server", "image", "create", server["id"], "--name",
                              "snap", "--property", "purpose=backup", "--wait", "-f", "json")
    assert status == 0, err
    snap = json.loads(out)
    assert (snap["status"], snap["name"]) == ("active", "snap"), snap
    assert "image_type=snapshot" in snap["properties"] and \
        "purpose=backup" in snap["properties"], snap
    assert err.splitlines()[-1].startswith(f"image {snap['id']}: active "), err
    ok(config, "image", "delete", snap["id"])

    snapshot = json.loads(ok(config, "snapshot", "create", volume["id"], "--wait",
                             "-f", "json"))
    assert snapshot["status"] == "available", snapshot
    ok(config, "snapshot", "delete", snapshot["id"])

    # volume -> image (the volume service writes it, cloud.image stores it) -> volume
    status, out, err = client(config, "image", "create", "from-data", "--volume", volume["id"],
                              "-f", "json")
    assert status == 0, err
    made = json.loads(out)
    # the upload's state and bytes, as the volume records them, on stderr while it runs
    assert f"uploading volume {volume['id']} into an image: " in err, err
    assert (made["status"], made["progress"], made["properties"]) == \
        ("active", None, f"source_volume_id={volume['id']}"), made
    status, out, err = client(config, "volume", "create", "1", "--image", made["id"],
                              "--wait", "-f", "json")
    assert status == 0, err
    restored = json.loads(out)
    assert (restored["status"], restored["image_id"], restored["progress"]) == \
        ("available", made["id"], None), restored
    ok(config, "volume", "delete", restored["id"])

    ok(config, "server", "delete", server["id"])
    ok(config, "volume", "delete", volume["id"])
    assert ok(config, "server", "list", "-f", "value") == ""

    # An unknown resource: one line naming it, exit status 1, nothing on stdout; the
    # console script (a process of its own) as well as in-process.
    missing = str(uuid.uuid4())
    run = subprocess.run([str(BIN / "stackcore-client"), "--config-file", config,
                          "server", "show", missing], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert run.stderr == f"stackcore-client: NotFound: server {missing!r} not found\n", \
        run.stderr
    assert run.stdout == ""
    status, _, err = client(config, "flavor", "show", "nope")
    assert (status, err) == (1, "stackcore-client: NotFound: flavor 'nope' not found\n")
