"""The compute metadata service, over real HTTP against the named service running in an
embedded cloud (SQLite and PostgreSQL): every tree, user data, keys, network_data for a port
on a DHCP subnet and one on a static subnet, vendor data, each refusal code, the secret and
signatures never logged, and start-up refused without a secret or with a bad vendor file."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import stackcore
from stackcore import exception, families
from stackcore.cloud import ALL_SERVICES
from stackcore.compute.metadata import content
from stackcore.compute.metadata.service import sign
from stackcore.project import RequestContext

SECRET = "s3cret-shared-with-the-proxy"
ALICE = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
USER_DATA = b"#cloud-config\nruncmd:\n  - [echo, hello]\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """A metadata proxy: signs each request for one server."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, path: str, server: Any = None, *, method: str = "GET",
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        sent = {} if server is None else {
            "X-Instance-ID": server.id, "X-Tenant-ID": server.project_id,
            "X-Instance-ID-Signature": sign(SECRET, server.id)}
        sent.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=sent)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            conn.close()

    def get(self, path: str, server: Any) -> bytes:
        status, _, body = self.request(path, server)
        assert status == 200, f"GET {path}: {status} {body!r}"
        return body

    def json(self, path: str, server: Any) -> Any:
        status, kind, body = self.request(path, server)
        assert (status, kind) == (200, "application/json"), f"GET {path}: {status} {body!r}"
        return json.loads(body)


@pytest.fixture
def metadata(make_cloud: Callable[..., stackcore.Cloud], image_file: str,
             tmp_path: Path) -> Iterator[tuple[stackcore.Cloud, Client]]:
    vendor = tmp_path / "vendor.json"
    vendor.write_text(json.dumps({"motd": "hello", "nested": {"a": [1, 2]}}))
    port = _free_port()
    cloud = make_cloud(fake_hosts=1, services=[*ALL_SERVICES, "metadata"], overrides={
        "metadata": {"metadata_proxy_shared_secret": SECRET, "listen_port": port,
                     "vendor_data_file": str(vendor)}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file, "raw", visibility="public")
    yield cloud, Client(port)


def _server(cloud: stackcore.Cloud, **kwargs: Any) -> tuple[Any, str]:
    """A server of alice's with her keypair ``k``, user data, and ports on a DHCP subnet and
    a static one."""
    alice = cloud.as_project(ALICE)
    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " alice"
    alice.compute.create_keypair("k", key)
    dhcp_net = alice.network.create_network("dhcp-net")
    alice.network.create_subnet(dhcp_net.id, "10.1.0.0/24", dns_nameservers=["10.1.0.53"])
    static_net = alice.network.create_network("static-net")
    alice.network.create_subnet(
        static_net.id, "192.168.7.0/24", enable_dhcp=False, gateway_ip="192.168.7.1",
        dns_nameservers=["192.168.7.53", "9.9.9.9"],
        host_routes=[{"destination": "172.16.0.0/16", "nexthop": "192.168.7.254"}])
    server = alice.compute.create_server(
        "My Server_1", "small", "img", key_name="k", metadata={"role": "web"},
        user_data=base64.b64encode(USER_DATA).decode(),
        networks=[{"network_id": dhcp_net.id}, {"network_id": static_net.id}], **kwargs)
    assert server.status == "ACTIVE", server
    return server, key


def test_openstack_tree(metadata) -> None:
    cloud, client = metadata
    server, key = _server(cloud)
    versions = client.get("/openstack", server).decode().splitlines()
    assert versions == [*content.OPENSTACK_VERSIONS, "latest"], versions
    assert client.get("/openstack/latest/", server).decode().splitlines() == [
        "meta_data.json", "user_data", "vendor_data.json", "network_data.json"]
    assert "network_data.json" not in client.get("/openstack/2013-10-17", server).decode()
    meta = client.json("/openstack/latest/meta_data.json", server)
    seed = meta.pop("random_seed")
    assert len(base64.b64decode(seed)) == 512
    assert meta == {
        "uuid": server.id, "name": "My Server_1", "hostname": "my-server-1",
        "availability_zone": "nova", "project_id": "project-a", "launch_index": 0,
        "meta": {"role": "web"}, "devices": [], "public_keys": {"k": key},
        "keys": [{"name": "k", "type": "ssh", "data": key}]}, meta
    assert client.json("/openstack/2012-08-10/meta_data.json", server)["uuid"] == server.id
    assert client.get("/openstack/latest/user_data", server) == USER_DATA
    assert client.json("/openstack/latest/vendor_data.json", server) == {
        "motd": "hello", "nested": {"a": [1, 2]}}
    # The keypair deleted later: the server keeps its copy.
    cloud.as_project(ALICE).compute.delete_keypair("k")
    assert client.json("/openstack/latest/meta_data.json", server)["public_keys"] == {"k": key}


def test_network_data_for_dhcp_and_static_subnets(metadata) -> None:
    cloud, client = metadata
    server, _ = _server(cloud)
    ports = cloud.network.list_ports(device_id=server.id, all_projects=True)
    by_net = {cloud.network.get_network(p.network_id).name: p for p in ports}
    dhcp, static = by_net["dhcp-net"], by_net["static-net"]
    data = client.json("/openstack/latest/network_data.json", server)
    links = {link["vif_id"]: link for link in data["links"]}
    assert set(links) == {dhcp.id, static.id}, data
    for port in (dhcp, static):
        link = links[port.id]
        assert (link["ethernet_mac_address"], link["mtu"], link["id"]) == (
            port.mac_address, cloud.network.get_network(port.network_id).mtu,
            ("tap" + port.id)[:14]), link
    networks = {n["network_id"]: n for n in data["networks"]}
    assert networks[dhcp.network_id] == {
        "id": networks[dhcp.network_id]["id"], "link": links[dhcp.id]["id"],
        "network_id": dhcp.network_id, "type": "ipv4_dhcp",
        "services": [{"type": "dns", "address": "10.1.0.53"}]}, networks
    assert networks[static.network_id] == {
        "id": networks[static.network_id]["id"], "link": links[static.id]["id"],
        "network_id": static.network_id, "type": "ipv4",
        "ip_address": static.fixed_ips[0].ip_address, "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.7.1"},
                   {"network": "172.16.0.0", "netmask": "255.255.0.0",
                    "gateway": "192.168.7.254"}],
        "services": [{"type": "dns", "address": "192.168.7.53"},
                     {"type": "dns", "address": "9.9.9.9"}]}, networks
    assert data["services"] == [{"type": "dns", "address": a}
                                for a in ("10.1.0.53", "192.168.7.53", "9.9.9.9")], data


def test_ec2_tree(metadata) -> None:
    cloud, client = metadata
    server, key = _server(cloud)
    root = client.get("/", server).decode().splitlines()
    assert root == [*content.EC2_VERSIONS, "latest", "openstack"], root
    assert client.get("/latest", server).decode().splitlines() == ["meta-data/", "user-data"]
    listing = client.get("/latest/meta-data/", server).decode().splitlines()
    for name in ("instance-id", "hostname", "local-ipv4", "public-keys/", "security-groups",
                 "placement/", "block-device-mapping/"):
        assert name in listing, listing
    ports = cloud.network.list_ports(device_id=server.id, all_projects=True)
    ipv4 = {p.fixed_ips[0].ip_address for p in ports}
    assert client.get("/latest/meta-data/instance-id", server) == server.id.encode()
    assert client.get("/latest/meta-data/hostname", server) == b"my-server-1"
    assert client.get("/latest/meta-data/local-ipv4", server).decode() in ipv4
    assert client.get("/latest/meta-data/instance-type", server) == b"small"
    assert client.get("/latest/meta-data/public-keys/", server) == b"0=k"
    assert client.get("/latest/meta-data/public-keys/0/", server) == b"openssh-key"
    assert client.get("/latest/meta-data/public-keys/0/openssh-key", server) == key.encode()
    assert client.get("/latest/meta-data/placement/availability-zone", server) == b"nova"
    assert client.get("/latest/meta-data/security-groups", server) == b"default"
    assert client.get("/2009-04-04/user-data", server) == USER_DATA
    assert client.get("/latest/user-data", server) == USER_DATA
    status, _, _ = client.request("/latest/meta-data/nothing-here", server)
    assert status == 404


def test_server_without_key_or_user_data(metadata) -> None:
    cloud, client = metadata
    server = cloud.compute.create_server("bare", "small", "img")
    meta = client.json("/openstack/latest/meta_data.json", server)
    assert "public_keys" not in meta and "keys" not in meta, meta
    assert client.get("/openstack/latest", server).decode().splitlines() == [
        "meta_data.json", "vendor_data.json", "network_data.json"]
    assert client.request("/openstack/latest/user_data", server)[0] == 404
    assert client.request("/latest/user-data", server)[0] == 404
    assert client.json("/openstack/latest/network_data.json", server) == {
        "links": [], "networks": [], "services": []}
    assert "public-keys/" not in client.get("/latest/meta-data", server).decode()


def test_refusals_and_nothing_secret_logged(metadata, caplog) -> None:
    cloud, client = metadata
    caplog.set_level(logging.DEBUG)
    server = cloud.compute.create_server("s", "small", "img")
    other = cloud.as_project(ALICE).compute.create_server("theirs", "small", "img")
    path = "/openstack/latest/meta_data.json"
    signature = sign(SECRET, server.id)
    good = {"X-Instance-ID": server.id, "X-Tenant-ID": server.project_id,
            "X-Instance-ID-Signature": signature}
    for missing in good:
        headers = {k: v for k, v in good.items() if k != missing}
        status, _, body = client.request(path, headers=headers)
        assert status == 400 and missing.encode() in body, (missing, status, body)
    cases = {
        "bad signature": ({**good, "X-Instance-ID-Signature": "0" * 64}, 403),
        "another server's signature": ({**good, "X-Instance-ID-Signature":
                                        sign(SECRET, other.id)}, 403),
        "signed with another secret": ({**good, "X-Instance-ID-Signature":
                                        sign("guess", server.id)}, 403),
        "another project": ({**good, "X-Tenant-ID": "project-a"}, 404),
        "unknown server": ({"X-Instance-ID": "nope", "X-Tenant-ID": "admin",
                            "X-Instance-ID-Signature": sign(SECRET, "nope")}, 404),
    }
    for label, (headers, expected) in cases.items():
        status, _, body = client.request(path, headers=headers)
        assert status == expected, (label, status, body)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, _, body = client.request(path, server, method=method)
        assert status == 405, (method, status, body)
    status, _, body = client.request(path, server, method="HEAD")
    assert (status, body) == (200, b"")
    cloud.compute.delete_server(server.id)
    assert client.request(path, server)[0] == 404
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused (403)" in logged and "refused (404)" in logged, logged[-2000:]
    for secret in (SECRET, signature, sign(SECRET, other.id)):
        assert secret not in logged, f"{secret!r} was logged"


def test_named_service_runs_only_where_named(make_cloud, tmp_path: Path) -> None:
    assert "metadata" in families.named_services()
    assert "metadata" not in families.services() and "metadata" not in ALL_SERVICES
    assert families.all_services()[-len(families.named_services()):] == \
        families.named_services()
    port = _free_port()
    overrides = {"metadata": {"metadata_proxy_shared_secret": SECRET, "listen_port": port}}
    make_cloud(fake_hosts=0, overrides=overrides)  # the default services: no metadata
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free: nothing listens there
    cloud = make_cloud(fake_hosts=0, services=["metadata"], overrides=overrides)
    status, _, body = Client(port).request("/", headers={})
    assert status == 400, body
    cloud.close()  # stops promptly and frees the port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_refused_without_secret_or_with_bad_vendor_file(make_cloud,
                                                              tmp_path: Path) -> None:
    port = _free_port()
    with pytest.raises(exception.ConfigError, match="metadata_proxy_shared_secret"):
        make_cloud(fake_hosts=0, services=["metadata"], overrides={
            "metadata": {"listen_port": port}})
    bad = {"missing": str(tmp_path / "absent.json"), "not json": tmp_path / "bad.json",
           "a list": tmp_path / "list.json"}
    Path(bad["not json"]).write_text("{not json")
    Path(bad["a list"]).write_text("[1, 2]")
    for label, path in bad.items():
        with pytest.raises(exception.ConfigError) as caught:
            make_cloud(fake_hosts=0, services=["metadata"], overrides={"metadata": {
                "listen_port": port, "metadata_proxy_shared_secret": SECRET,
                "vendor_data_file": str(path)}})
        assert "vendor_data_file" in str(caught.value) and str(path) in str(caught.value), \
            f"{label}: {caught.value}"
    with socket.socket() as sock:  # nothing was left listening
        sock.bind(("127.0.0.1", port))


def test_stackcore_service_metadata_ends_promptly_on_sigterm(tmp_path: Path) -> None:
    import select
    import signal
    import subprocess
    import sys
    import time

    port = _free_port()
    config = tmp_path / "metadata.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n"
                      f"[metadata]\nlisten_port = {port}\n"
                      f"metadata_proxy_shared_secret = {SECRET}\n")
    log = tmp_path / "service.log"
    with open(log, "w") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "stackcore.cli.main", "service",
                                 "metadata", "--config-file", str(config)],
                                stdout=subprocess.PIPE, stderr=errors, text=True,
                                stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert "running" in line, f"{line!r}\n{log.read_text()[-3000:]}"
        status, _, body = Client(port).request("/openstack", headers={})
        assert status == 400 and b"X-Instance-ID" in body, (status, body)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        took = time.monotonic() - sent
        assert (proc.returncode, took < 5) == (0, True), \
            f"exit {proc.returncode} after {took:.2f} s\n{log.read_text()[-3000:]}"
        assert SECRET not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_content_functions_hostnames_and_ipv6() -> None:
    assert content.hostname("Web Server #1!", "u") == "web-server-1"
    assert content.hostname("!!!", "abc") == "server-abc"
    assert len(content.hostname("x" * 100, "u")) == 63
    static6 = content.Subnet("s6", "2001:db8::/64", 6, None, False, ("2001:db8::53",),
                             ({"destination": "2001:db8:1::/48", "nexthop": "2001:db8::1"},))
    dhcp6 = content.Subnet("d6", "2001:db8:2::/64", 6, "2001:db8:2::1", True)
    port = content.Port("p" * 36, "net", "fa:16:3e:00:00:01", 1450, "ovs", (
        content.PortAddress("2001:db8::5", static6), content.PortAddress("2001:db8:2::5",
                                                                         dhcp6)))
    data = content.network_data([port])
    assert data["links"] == [{"id": "tap" + "p" * 11, "vif_id": "p" * 36, "type": "ovs",
                              "mtu": 1450, "ethernet_mac_address": "fa:16:3e:00:00:01"}]
    assert data["networks"] == [
        {"id": "network0", "link": "tap" + "p" * 11, "network_id": "net", "type": "ipv6",
         "ip_address": "2001:db8::5", "netmask": "ffff:ffff:ffff:ffff::",
         "routes": [{"network": "2001:db8:1::", "netmask": "ffff:ffff:ffff::",
                     "gateway": "2001:db8::1"}],  # no gateway: no default route
         "services": [{"type": "dns", "address": "2001:db8::53"}]},
        {"id": "network1", "link": "tap" + "p" * 11, "network_id": "net",
         "type": "ipv6_dhcp", "services": []}], data
    assert content.resolve({"a": {"b": "x"}}, "/a/b/c") is None
    assert content.resolve({"a": {"_hidden": "x"}}, "/a/_hidden") is None
    assert content.resolve({"a": {"_hidden": "x", "b": {}}}, "/a") == (
        "text/plain; charset=utf-8", b"b/")
