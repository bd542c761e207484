"""stackcore-client without services: its formatting, its progress display, and the commands
that need only the database (flavors, networks, errors) on an SQLite deployment."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import uuid

import pytest

from stackcore.client import format as fmt
from stackcore.client.app import ClientApp
from stackcore.client.progress import CountingReader, Progress


@dataclasses.dataclass(frozen=True)
class _Inner:
    name: str


@dataclasses.dataclass(frozen=True)
class _View:
    id: str
    count: int
    flag: bool
    when: datetime.datetime
    inner: _Inner
    meta: dict[str, str]
    items: tuple[str, ...]
    nothing: None = None


def test_values_keep_scalars_and_flatten_the_rest() -> None:
    view = _View("x", 3, True, datetime.datetime(2026, 1, 2, 3, 4, 5), _Inner("small"),
                 {"b": "2", "a": "1"}, ("p", "q"))
    columns, values = fmt.show(view, {"extra": ["v1", "v2"]})
    shown = dict(zip(columns, values, strict=True))
    assert shown == {"id": "x", "count": 3, "flag": True, "when": "2026-01-02T03:04:05",
                     "inner": "small", "meta": "a=1, b=2", "items": "p, q", "nothing": None,
                     "extra": "v1, v2"}, shown


def test_plain_progress_writes_state_changes_and_steps_not_every_update() -> None:
    out = io.StringIO()
    with Progress(out, "volume v", tty=False) as progress:
        for state in ("creating", "creating", "downloading", "available"):
            progress.update(state=state)
    lines = [line.rsplit(" ", 1)[0] for line in out.getvalue().splitlines()]
    assert lines == ["volume v: creating", "volume v: downloading", "volume v: available"], \
        out.getvalue()

    out = io.StringIO()
    with Progress(out, "upload", total=1000, tty=False, step=25) as progress:
        reader = CountingReader(io.BytesIO(b"x" * 1000), progress)
        while reader.read(100):
            pass
    lines = [line.rsplit(" ", 1)[0] for line in out.getvalue().splitlines()]
    # one line at the first update in each 25 % band (reads of 100 of 1000 bytes), and 100 %
    assert lines == [f"upload: {p}% ({p * 10}/1000 bytes)" for p in (10, 30, 50, 80, 100)], \
        out.getvalue()
    assert reader.count == 1000


def test_tty_progress_draws_a_bar_not_lines() -> None:
    out = io.StringIO()
    with Progress(out, "upload x", total=100, tty=True) as progress:
        progress.update(50, state="copying")
        progress.update(100)
    text = out.getvalue()
    assert "upload x" in text and "\u2501" in text and "100/100 bytes" in text, repr(text)
    assert "bytes)" not in text, f"plain lines on a terminal: {text!r}"

    out = io.StringIO()  # --wait: no amount of work, the state and the time instead
    with Progress(out, "server s", tty=True) as progress:
        progress.update(state="BUILDING (spawning)")
    assert "server s" in out.getvalue() and "BUILDING (spawning)" in out.getvalue() and \
        "0:00:0" in out.getvalue(), repr(out.getvalue())


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "stackcore.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n")
    return str(path)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = ClientApp(stdout=out, stderr=err).run(list(argv))
    return status, out.getvalue(), err.getvalue()


def test_output_formats_and_columns(config) -> None:
    status, out, err = run("--config-file", config, "flavor", "create", "small", "--vcpus",
                           "2", "--ram", "512", "--disk", "5", "-f", "json")
    assert status == 0, err
    flavor = json.loads(out)
    assert (flavor["name"], flavor["vcpus"], flavor["ram_mb"], flavor["disk_gb"]) == \
        ("small", 2, 512, 5), flavor
    status, out, err = run("--config-file", config, "flavor", "list", "-f", "value",
                           "-c", "name", "-c", "vcpus")
    assert (status, out) == (0, "small 2\n"), err
    status, out, err = run("--config-file", config, "flavor", "show", "small", "-f", "yaml",
                           "-c", "ram_mb")
    assert (status, out) == (0, "ram_mb: 512\n"), err
    status, out, err = run("--config-file", config, "flavor", "list")
    assert status == 0 and "| small |" in out.replace("  ", " "), out

    status, out, err = run("--config-file", config, "network", "create", "net", "-f", "json")
    assert status == 0, err
    network = json.loads(out)
    status, out, err = run("--config-file", config, "subnet", "create", "sub", "--network",
                           network["id"], "--subnet-range", "10.9.0.0/24", "-f", "json")
    assert status == 0, err
    assert json.loads(out)["gateway_ip"] == "10.9.0.1", out
    status, out, err = run("--config-file", config, "port", "create", "p", "--network",
                           network["id"], "-f", "json")
    assert status == 0, err
    assert json.loads(out)["fixed_ips"].startswith("10.9.0."), out


def test_image_lifecycle(config, tmp_path) -> None:
    data = tmp_path / "image.raw"
    data.write_bytes(b"\0" * 65536)
    image = json.loads(run("--config-file", config, "image", "create", "img", "--file",
                           str(data), "-f", "json")[1])
    assert (image["status"], image["size_bytes"]) == ("active", 65536), image

    def status_after(action: str) -> str:
        status, out, err = run("--config-file", config, "image", action, image["id"],
                               "-f", "value", "-c", "status")
        assert status == 0, err
        return out

    assert status_after("deactivate") == "deactivated\n"
    assert status_after("reactivate") == "active\n"
    assert run("--config-file", config, "image", "set", image["id"], "--protected", "-f",
               "value", "-c", "protected")[1] == "True\n"
    status, _, err = run("--config-file", config, "image", "delete", image["id"])
    assert status == 1 and err.startswith("stackcore-client: Conflict: "), err
    run("--config-file", config, "image", "set", image["id"], "--unprotected")
    assert run("--config-file", config, "image", "delete", image["id"])[0] == 0
    assert run("--config-file", config, "image", "list", "-f", "value")[1] == ""


def test_errors_are_one_line_naming_the_culprit(config, tmp_path, monkeypatch) -> None:
    missing = str(uuid.uuid4())
    assert run("--config-file", config, "volume", "show", missing) == \
        (1, "", f"stackcore-client: NotFound: volume {missing!r} not found\n")
    status, _, err = run("--config-file", config, "flavor", "create", "bad", "--vcpus", "0",
                         "--ram", "1")
    assert status == 1 and err.startswith("stackcore-client: Invalid: ") and "vcpus" in err, err
    status, _, err = run("--config-file", config, "image", "create", "x", "--file",
                         str(tmp_path / "missing.raw"))
    assert (status, err) == (1, f"stackcore-client: Invalid: invalid --file: "
                                f"{tmp_path / 'missing.raw'}: No such file or directory\n")
    not_qcow2 = tmp_path / "not.qcow2"
    not_qcow2.write_bytes(b"\0" * 4096)
    status, _, err = run("--config-file", config, "image", "create", "y", "--file",
                         str(not_qcow2), "--disk-format", "qcow2")
    # after the upload's progress line: the store's refusal, naming what the content is
    assert status == 1 and err.splitlines()[-1] == (
        "stackcore-client: Invalid: invalid disk_format: is 'qcow2' but the content of data "
        "is raw"), err
    status, out, err = run("--config-file", config, "image", "list", "-f", "value")
    assert (status, out) == (0, ""), f"a failed image create left {out!r} {err}"
    assert run("--config-file", config, "server", "evacuate", missing) == \
        (1, "", f"stackcore-client: NotFound: server {missing!r} not found\n")
    assert run("--config-file", config, "server", "evacuate", missing, "--host",
               "compute-9") == \
        (1, "", f"stackcore-client: NotFound: server {missing!r} not found\n")
    monkeypatch.delenv("STACKCORE_CONFIG_FILE", raising=False)
    status, _, err = run("flavor", "list")
    assert (status, err) == (1, "stackcore-client: ConfigError: no deployment given: pass "
                                "--config-file or set $STACKCORE_CONFIG_FILE\n")


def test_server_create_refuses_an_unknown_security_group_naming_it(config, tmp_path) -> None:
    data = tmp_path / "image.raw"
    data.write_bytes(b"\0" * 65536)
    for command in (("flavor", "create", "small", "--vcpus", "1", "--ram", "64"),
                    ("image", "create", "img", "--file", str(data))):
        status, _, err = run("--config-file", config, *command)
        assert status == 0, err
    network = json.loads(run("--config-file", config, "network", "create", "net",
                             "-f", "json")[1])
    status, out, err = run("--config-file", config, "server", "create", "vm", "--flavor",
                           "small", "--image", "img", "--network", network["id"],
                           "--security-group", "nosuch")
    assert status == 1 and "nosuch" in err and "security_group" in err, (status, out, err)
    status, out, err = run("--config-file", config, "server", "list", "-f", "value")
    assert (status, out) == (0, ""), (status, out, err)


def test_keypairs_and_a_server_with_key_and_user_data(config, tmp_path) -> None:
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    import stackcore

    private = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    public += " me@laptop"
    (tmp_path / "id_ed25519.pub").write_text(public + "\n")
    digest = hashlib.md5(base64.b64decode(public.split()[1]), usedforsecurity=False).hexdigest()
    printed = "MD5:" + ":".join(digest[i:i + 2] for i in range(0, 32, 2))
    status, out, err = run("--config-file", config, "keypair", "create", "mine",
                           "--public-key", str(tmp_path / "id_ed25519.pub"), "-f", "json")
    assert status == 0, err
    made = json.loads(out)
    assert (made["name"], made["public_key"], "MD5:" + made["fingerprint"]) == \
        ("mine", public, printed), made
    assert run("--config-file", config, "keypair", "list", "-f", "value") == \
        (0, f"mine {made['fingerprint']} ssh\n", "")
    assert json.loads(run("--config-file", config, "keypair", "show", "mine", "-f",
                          "json")[1])["public_key"] == public
    status, _, err = run("--config-file", config, "keypair", "create", "bad",
                         "--public-key", str(key_file))  # the private key: refused
    assert status == 1 and err.startswith("stackcore-client: Invalid: invalid public_key: "), err
    status, _, err = run("--config-file", config, "keypair", "create", "bad",
                         "--public-key", str(tmp_path / "missing.pub"))
    assert (status, err) == (1, f"stackcore-client: Invalid: invalid --public-key: "
                                f"{tmp_path / 'missing.pub'}: No such file or directory\n")

    data = tmp_path / "image.raw"
    data.write_bytes(b"\0" * 65536)
    for command in (("flavor", "create", "small", "--vcpus", "1", "--ram", "64"),
                    ("image", "create", "img", "--file", str(data))):
        assert run("--config-file", config, *command)[0] == 0
    script = tmp_path / "user-data"
    script.write_bytes(b"#!/bin/sh\necho \xe2\x9c\x93 hello\n")
    status, out, err = run("--config-file", config, "server", "create", "vm", "--flavor",
                           "small", "--image", "img", "--key-name", "mine", "--user-data",
                           str(script), "-f", "json")
    assert status == 0, err
    server = json.loads(out)
    assert server["key_name"] == "mine" and "user_data" not in server, server
    with stackcore.Cloud(config, services=()) as cloud, cloud.db.read() as session:
        from stackcore.compute import models

        row = session.get(models.Instance, server["id"])
        assert row is not None and row.key_data == public, row
        assert base64.b64decode(row.user_data or "") == script.read_bytes()
    status, _, err = run("--config-file", config, "server", "create", "vm2", "--flavor",
                         "small", "--image", "img", "--key-name", "nosuch")
    assert status == 1 and "key_name" in err and "nosuch" in err, err
    assert run("--config-file", config, "keypair", "delete", "mine", "mine")[0] == 0
    assert run("--config-file", config, "keypair", "list", "-f", "value") == (0, "", "")


def test_server_create_boot_volume_options_reach_the_api(config, tmp_path) -> None:
    """The client is no deployment (services=()): with no volume service reporting, a root
    volume cannot be placed - the error says so and nothing is left; the refusals name
    the argument."""
    data = tmp_path / "image.raw"
    data.write_bytes(b"\xeb\x3cboot" + b"\0" * 65530)
    for command in (("flavor", "create", "small", "--vcpus", "1", "--ram", "64", "--disk", "1"),
                    ("image", "create", "img", "--file", str(data))):
        status, _, err = run("--config-file", config, *command)
        assert status == 0, err
    status, out, err = run("--config-file", config, "server", "create", "vm", "--flavor",
                           "small", "--image", "img", "--boot-from-volume", "1")
    assert status == 1 and "NoValidHost" in err and "volume" in err, (status, out, err)
    volume_id = "6b0c2d8e-3f1a-4c5e-9d7b-2a4e6f8c0b1d"
    status, out, err = run("--config-file", config, "server", "create", "vm2", "--flavor",
                           "small", "--image", "img", "--boot-volume", volume_id)
    assert status == 1 and "image" in err and "boot volume" in err, (status, out, err)
    status, out, err = run("--config-file", config, "server", "create", "vm3", "--flavor",
                           "small", "--boot-volume", volume_id)
    assert status == 1 and "NotFound" in err and volume_id in err, (status, out, err)
    status, out, err = run("--config-file", config, "server", "create", "vm4", "--flavor",
                           "small")
    assert status == 1 and "image" in err and "boot_volume" in err, (status, out, err)
    with pytest.raises(SystemExit):  # argparse: the two are mutually exclusive
        run("--config-file", config, "server", "create", "vm5", "--flavor", "small",
            "--boot-volume", volume_id, "--boot-from-volume", "1")
    for listing in (("server", "list"), ("volume", "list")):
        assert run("--config-file", config, *listing, "-f", "value") == (0, "", ""), listing


def test_volume_manage_and_unmanage_reach_the_api(config) -> None:
    """The client is no deployment: no backend reports the pool, so the manage is refused
    naming it, and nothing is left; unmanage of an unknown volume names it."""
    status, out, err = run("--config-file", config, "volume", "manage", "nowhere@lvm#lvm",
                           "legacy-disk", "--name", "legacy")
    assert status == 1 and "NotFound" in err and "nowhere@lvm#lvm" in err, (status, out, err)
    missing = "6b0c2d8e-3f1a-4c5e-9d7b-2a4e6f8c0b1d"
    status, out, err = run("--config-file", config, "volume", "unmanage", missing)
    assert status == 1 and "NotFound" in err and missing in err, (status, out, err)
    assert run("--config-file", config, "volume", "list", "-f", "value") == (0, "", "")


def test_volume_migrate_and_retype_reach_the_api(config) -> None:
    """Both name an unknown volume in their error (the client's cloud has none), and a bad
    migration policy is refused by the parser before any call."""
    missing = "6b0c2d8e-3f1a-4c5e-9d7b-2a4e6f8c0b1d"
    status, out, err = run("--config-file", config, "volume", "migrate", missing, "--host",
                           "vm@slow#slow")
    assert status == 1 and "NotFound" in err and missing in err, (status, out, err)
    status, out, err = run("--config-file", config, "volume", "retype", missing, "gold",
                           "--migration-policy", "on-demand")
    assert status == 1 and "NotFound" in err and missing in err, (status, out, err)
    status, out, err = run("--config-file", config, "volume", "reimage", missing, "img")
    assert status == 1 and "NotFound" in err and missing in err, (status, out, err)
    with pytest.raises(SystemExit) as parsed:
        run("--config-file", config, "volume", "retype", missing, "gold",
            "--migration-policy", "sometimes")
    assert parsed.value.code == 2, parsed.value.code


def test_server_migrate_and_migration_abort_reach_the_api(config) -> None:
    """Live and cold migration name an unknown server in their error; the live-only options
    without --live-migration are refused naming them, before any call."""
    missing = "6b0c2d8e-3f1a-4c5e-9d7b-2a4e6f8c0b1d"
    for extra in ((), ("--live-migration",), ("--live-migration", "--host", "kvm-2",
                                              "--block-migration")):
        status, out, err = run("--config-file", config, "server", "migrate", missing, *extra)
        assert status == 1 and "NotFound" in err and missing in err, (extra, status, out, err)
    status, out, err = run("--config-file", config, "server", "migrate", missing, "--host",
                           "kvm-2")
    assert status == 1 and "--live-migration" in err, (status, out, err)
    status, out, err = run("--config-file", config, "server", "migration", "abort", missing)
    assert status == 1 and "NotFound" in err and missing in err, (status, out, err)
    with pytest.raises(SystemExit) as parsed:
        run("--config-file", config, "server", "migrate", missing, "--live-migration",
            "--block-migration", "--shared-migration")
    assert parsed.value.code == 2, parsed.value.code
