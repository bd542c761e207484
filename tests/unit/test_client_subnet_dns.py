"""``subnet create/set --dns-nameserver/--host-route`` (OpenStackClient's spelling)."""

from __future__ import annotations

import io
import json

import pytest

from stackcore.client.app import ClientApp


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "stackcore.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n")
    return str(path)


def run(config: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = ClientApp(stdout=out, stderr=err).run(["--config-file", config, *argv])
    return status, out.getvalue(), err.getvalue()


def test_subnet_dns_servers_and_host_routes(config) -> None:
    status, out, err = run(config, "network", "create", "net", "-f", "json")
    assert status == 0, err
    network = json.loads(out)["id"]
    status, out, err = run(config, "subnet", "create", "sub", "--network", network,
                           "--subnet-range", "10.9.0.0/24", "--dns-nameserver", "10.9.0.53",
                           "--dns-nameserver", "192.0.2.53", "--host-route",
                           "destination=198.51.100.0/24,gateway=10.9.0.254", "-f", "json")
    assert status == 0, err
    subnet = json.loads(out)
    show = run(config, "subnet", "show", subnet["id"], "-f", "json")[1]
    assert "10.9.0.53" in show and "198.51.100.0/24" in show, show
    status, out, err = run(config, "subnet", "set", subnet["id"], "--dns-nameserver",
                           "9.9.9.9", "-f", "json")
    assert status == 0, err
    status, out, err = run(config, "subnet", "set", subnet["id"], "--no-host-route",
                           "--no-dns-nameservers", "--dns-nameserver", "1.1.1.1", "-f", "json")
    assert status == 0, err
    status, out, err = run(config, "subnet", "set", subnet["id"], "--host-route",
                           "destination=10.0.0.0/8", "-f", "json")
    assert status == 1 and "--host-route" in err and "destination=10.0.0.0/8" in err, err
    status, out, err = run(config, "subnet", "set", subnet["id"], "--dns-nameserver",
                           "1.1.1.1")
    assert status == 1 and "dns_nameservers[1]" in err and "1.1.1.1" in err, err
