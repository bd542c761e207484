"""The DHCP agent's metadata path without namespaces: a real proxy server (on 127.0.0.1) ->
the agent's real UNIX-socket service -> a stub compute metadata service (an HTTP server in the
test that records what reaches it). The port lookup is a stub, except in the RPC test (an
embedded server). The path through a real ``qdhcp-`` namespace, DHCP route and guest:
tests/functional/network_agents/test_dhcp_agent.py."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import http.server
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.dhcp import metadata_proxy
from stackcore_drivers.network.dhcp.agent import DHCP_OPTS, DhcpAgent

import stackcore
from stackcore import exception
from stackcore.network.dhcp import DhcpNetwork, DhcpPort, DhcpRPCAPI

SECRET = "unit-metadata-s3cret"
NETWORK = "8d2f4b52-3f1e-4c4e-9a43-0d7f1a2b3c4d"
SERVER = "5b1e0c1a-7f43-4d6e-8d7b-2a9c3e4f5a6b"
PROJECT = "c0ffee00c0ffee00c0ffee00c0ffee00"


class StubMetadata:
    """Nova's metadata API as far as the proxy is concerned: records each request and
    answers ``200 {"uuid": <X-Instance-ID>}`` with a header of its own (404 for
    ``/missing``)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers.items()),
                                      "body": self.rfile.read(length) if length else b""})
                status = 404 if self.path.endswith("/missing") else 200
                body = json.dumps({"uuid": self.headers.get("X-Instance-ID")}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Stub", "nova")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nova() -> Iterator[StubMetadata]:
    stub = StubMetadata()
    yield stub
    stub.close()


@pytest.fixture
def chain(nova: StubMetadata, tmp_path: Path
          ) -> Iterator[Callable[[dict[tuple[str, str], dict[str, Any]]], int]]:
    """``chain(ports)``: the agent's service (looking ports up in ``ports``) and a proxy for
    :data:`NETWORK` listening on 127.0.0.1; returns the proxy's port."""
    made: list[Any] = []

    def make(ports: dict[tuple[str, str], dict[str, Any]]) -> int:
        socket_path = str(tmp_path / "metadata_proxy")
        service = metadata_proxy.MetadataService(
            socket_path, nova.url, SECRET, lambda net, address: ports.get((net, address)))
        service.start()
        made.append(service)
        proxy = metadata_proxy.make_proxy(NETWORK, socket_path, "127.0.0.1", 0)
        threading.Thread(target=proxy.serve_forever, args=(0.1,), daemon=True).start()
        made.append(proxy)
        return int(proxy.server_address[1])

    yield make
    for thing in made:
        if isinstance(thing, metadata_proxy.MetadataService):
            thing.stop()
        else:
            thing.shutdown()
            thing.server_close()


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


SPOOFED = {"X-Instance-ID": "someone-else", "X-Instance-ID-Signature": "0" * 64,
           "X-Tenant-ID": "other-project", "X-Forwarded-For": "10.0.0.99",
           "X-Stackcore-Network-ID": "00000000-0000-0000-0000-000000000000",
           "X-Instance-Id-Extra": "x", "Accept": "application/json"}


def test_request_is_identified_from_the_port_signed_and_the_guests_headers_ignored(
    chain: Callable[..., int], nova: StubMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = chain({(NETWORK, "127.0.0.1"): {"id": "p1", "device_id": SERVER,
                                           "device_owner": "compute:nova",
                                           "project_id": PROJECT}})
    status, headers, body = get(port, "/openstack/latest/meta_data.json", SPOOFED)
    assert (status, json.loads(body)) == (200, {"uuid": SERVER}), (status, body)
    assert headers.get("X-Stub") == "nova", headers
    assert len(nova.requests) == 1, nova.requests
    seen = nova.requests[0]
    assert seen["path"] == "/openstack/latest/meta_data.json"
    got = {k.lower(): v for k, v in seen["headers"].items()}
    expected_signature = hmac.new(SECRET.encode(), SERVER.encode(), hashlib.sha256).hexdigest()
    assert got["x-instance-id"] == SERVER, got
    assert got["x-tenant-id"] == PROJECT, got
    assert got["x-instance-id-signature"] == expected_signature, got
    assert got["x-forwarded-for"] == "127.0.0.1", got
    assert "x-instance-id-extra" not in got and "x-stackcore-network-id" not in got, got
    assert got["accept"] == "application/json", got
    # never logged: the secret, nor a signature
    assert SECRET not in caplog.text and expected_signature not in caplog.text, caplog.text

    # POST bodies and the compute service's error statuses are relayed
    status, _, _ = get(port, "/openstack/latest/missing")
    assert status == 404
    status, _, _ = get(port, "/openstack/latest/password", method="POST", body=b"pw")
    assert status == 200 and nova.requests[-1]["body"] == b"pw", nova.requests[-1]
    count = len(nova.requests)
    status, _, _ = get(port, "/openstack/latest/password", method="POST",
                       headers={"Content-Length": str(metadata_proxy.MAX_BODY + 1)})
    assert status == 413 and len(nova.requests) == count, status


@pytest.mark.parametrize("ports", [
    {},
    {(NETWORK, "127.0.0.1"): {"id": "p", "device_id": "", "device_owner": "",
                              "project_id": PROJECT}},
    {(NETWORK, "127.0.0.1"): {"id": "p", "device_id": "dhcp-x", "device_owner": "network:dhcp",
                              "project_id": PROJECT}},
    {("11111111-2222-3333-4444-555555555555", "127.0.0.1"): {
        "id": "p", "device_id": SERVER, "device_owner": "compute:nova", "project_id": PROJECT}},
], ids=["no-port", "port-of-no-server", "dhcp-port", "other-network"])
def test_unknown_source_gets_404_and_nothing_reaches_the_metadata_service(
    chain: Callable[..., int], nova: StubMetadata, ports: dict[tuple[str, str], Any]
) -> None:
    port = chain(ports)
    status, _, body = get(port, "/openstack/latest/meta_data.json", SPOOFED)
    assert status == 404, (status, body)
    assert nova.requests == [], nova.requests


def test_metadata_service_down_is_a_502_and_an_agent_away_a_503(
    chain: Callable[..., int], nova: StubMetadata, tmp_path: Path
) -> None:
    port = chain({(NETWORK, "127.0.0.1"): {"id": "p1", "device_id": SERVER,
                                           "device_owner": "compute:nova",
                                           "project_id": PROJECT}})
    nova.close()
    assert get(port, "/")[0] == 502
    proxy = metadata_proxy.make_proxy(NETWORK, str(tmp_path / "nobody"), "127.0.0.1", 0)
    threading.Thread(target=proxy.serve_forever, args=(0.1,), daemon=True).start()
    try:
        assert get(int(proxy.server_address[1]), "/")[0] == 503
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_options_refused_without_a_secret_and_the_secret_is_secret(tmp_path: Path) -> None:
    conf = load_agent_conf(DhcpAgent.list_opts()[1:], overrides={
        "DEFAULT": {"state_path": str(tmp_path)}})
    with pytest.raises(exception.ConfigError,
                       match=r"\[dhcp\] metadata_proxy_shared_secret is empty"):
        DhcpAgent(conf, None)  # type: ignore[arg-type]   # refused before any RPC
    opts = {opt.name: opt for opt in DHCP_OPTS}
    assert opts["metadata_proxy_shared_secret"].secret
    assert opts["enable_isolated_metadata"].default is True
    conf = load_agent_conf(DhcpAgent.list_opts()[1:], overrides={
        "DEFAULT": {"state_path": str(tmp_path)},
        "dhcp": {"metadata_proxy_shared_secret": SECRET, "metadata_url": "ftp://x/"}})
    with pytest.raises(exception.ConfigError, match="metadata_url 'ftp://x/'"):
        metadata_proxy.check_conf(conf)
    service = metadata_proxy.MetadataService("/" + "s" * 120, "http://127.0.0.1:1", SECRET,
                                             lambda net, address: None)
    with pytest.raises(exception.ConfigError, match=r"\[dhcp\] metadata_proxy_socket '/s+' is "
                       "longer than the 107 bytes"):
        service.start()


def test_every_served_subnet_routes_the_metadata_address_via_the_dhcp_port() -> None:
    a, b, off = ("a" * 8 + "-0000-4000-8000-" + "0" * 11 + str(i) for i in range(3))
    network = DhcpNetwork.from_dict({"id": NETWORK, "mtu": 1450, "ports": [], "subnets": [
        {"id": a, "cidr": "10.1.0.0/24", "enable_dhcp": True, "gateway_ip": "10.1.0.1"},
        {"id": b, "cidr": "10.2.0.0/24", "enable_dhcp": True, "gateway_ip": "10.2.0.1",
         "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "10.2.0.254"}]},
        {"id": off, "cidr": "10.3.0.0/24", "enable_dhcp": False, "gateway_ip": None}]})
    port = DhcpPort.from_dict({"id": SERVER, "mac_address": "fa:16:3e:00:00:02", "fixed_ips": [
        {"subnet_id": a, "ip_address": "10.1.0.2"}, {"subnet_id": b, "ip_address": "10.2.0.2"}]})
    routed = metadata_proxy.with_metadata_route(network, port)
    got = {s.id: s.served_routes() for s in routed.subnets}
    assert got == {
        a: (("169.254.169.254/32", "10.1.0.2"), ("0.0.0.0/0", "10.1.0.1")),
        b: (("192.0.2.0/24", "10.2.0.254"), ("169.254.169.254/32", "10.2.0.2"),
            ("0.0.0.0/0", "10.2.0.1")),
        off: ()}, got
    assert metadata_proxy.with_metadata_route(routed, port) == routed, "not idempotent"


@pytest.fixture
def server(make_cloud: Callable[..., stackcore.Cloud]) -> stackcore.Cloud:
    return make_cloud(overrides={"ml2": {"mechanism_drivers": ["fake"]}}, services=("network",))


def test_rpc_finds_the_port_by_network_and_address(server: stackcore.Cloud) -> None:
    net = server.network
    x = net.create_network("x")
    net.create_subnet(x.id, "10.66.0.0/24")
    vm = net.create_port(x.id, device_id=SERVER, device_owner="compute:nova")
    other = net.create_network("y")
    net.create_subnet(other.id, "10.66.0.0/24")
    rpc = DhcpRPCAPI(server.transport)
    address = vm.fixed_ips[0].ip_address
    found = rpc.get_port_by_address(x.id, address)
    assert found == {"id": vm.id, "device_id": SERVER, "device_owner": "compute:nova",
                     "project_id": vm.project_id}, found
    assert rpc.get_port_by_address(other.id, address) is None   # same address, other network
    assert rpc.get_port_by_address(x.id, "10.66.0.250") is None
    with pytest.raises(exception.Invalid, match="ip_address"):
        rpc.get_port_by_address(x.id, "10.66.0.1; drop")
