"""The L3 agent's status reports against an embedded server (SQLite, in-process RPC), with a
plugger that fails the way a broken datapath does: the router goes to ERROR with the agent's
fault, its floating IP too, and a pass that fails the same way again sends no second report
(the success path, on a real datapath: tests/functional/network_agents/test_l3_agent.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.l3.agent import L3Agent

import stackcore
from stackcore import exception
from stackcore.network.l3 import rpc as l3_rpc
from stackcore.rpc import Target

HOST = "l3-unit"


class BrokenPlugger:
    """Every plug fails as a datapath that cannot make the device would."""

    def plug(self, *args: Any, **kwargs: Any) -> str:
        raise exception.DriverError("ip link add qg-test type veth: Operation not permitted")

    def unplug(self, namespace: str) -> None:
        pass


def _lab(make_cloud: Callable[..., stackcore.Cloud]) -> tuple[stackcore.Cloud, Any, Any, Any]:
    """A server with a router (gateway, one interface) and a floating IP on it."""
    server = make_cloud(overrides={"ml2": {"mechanism_drivers": ["fake"]}},
                        services=("network",))
    net = server.network
    ext = net.create_network("ext", network_type="flat", physical_network="ext",
                             router_external=True)
    net.create_subnet(ext.id, "203.0.113.0/24")
    inner = net.create_network("n1")
    subnet = net.create_subnet(inner.id, "10.0.0.0/24")
    router = net.create_router("r1", external_gateway={"network_id": ext.id})
    net.add_router_interface(router.id, subnet.id)
    port = net.create_port(inner.id)
    fip = net.create_floatingip(ext.id, port_id=port.id)
    assert net.get_router(router.id).status == "BUILD"
    return server, net, router, fip


def _agent(server: stackcore.Cloud, tmp_path: Path) -> L3Agent:
    conf = load_agent_conf(L3Agent.list_opts()[1:], overrides={
        "DEFAULT": {"host": HOST, "state_path": str(tmp_path / "agent")},
        "l3": {"resync_interval": 60}})
    agent = L3Agent(conf, server.transport)
    agent._plugger = BrokenPlugger()  # type: ignore[assignment]
    return agent


def test_a_router_the_agent_cannot_serve_is_error_with_its_fault(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    server, net, router, fip = _lab(make_cloud)
    agent = _agent(server, tmp_path)
    reports: list[tuple[Any, ...]] = []
    send = agent.rpc.update_router_status

    def counted(*args: Any, **kwargs: Any) -> bool:
        reports.append(args)
        return send(*args, **kwargs)
    agent.rpc.update_router_status = counted  # type: ignore[method-assign]
    try:
        agent.sync_once()
        seen = net.get_router(router.id)
        assert seen.status == "ERROR", seen
        assert seen.fault is not None and "Operation not permitted" in seen.fault, seen
        assert net.get_floatingip(fip.id).status == "ERROR", net.get_floatingip(fip.id)
        assert len(reports) == 1, reports
        agent.sync_once()   # fails the same way: nothing new to report
        assert len(reports) == 1, reports
    finally:
        agent.stop()


def test_an_agent_keeps_serving_from_a_server_one_version_older(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Rolling upgrade, the server not yet upgraded (L3 RPC 1.0): the agent's sync_routers
    (1.0) works, its status reports (1.1) are refused and logged, and it goes on."""
    server, net, router, _ = _lab(make_cloud)
    monkeypatch.setattr(l3_rpc.L3RPCEndpoint, "target", Target(l3_rpc.TOPIC, version="1.0"))
    agent = _agent(server, tmp_path)
    try:
        with caplog.at_level(logging.WARNING):
            agent.sync_once()
        assert net.get_router(router.id).host == HOST   # claimed through 1.0
        assert router.id in agent.errors, agent.errors   # tried to serve it
        assert net.get_router(router.id).status == "BUILD"
        assert agent.reported == {}, agent.reported   # sent again after the next pass
        refused = [r.getMessage() for r in caplog.records if "not reported" in r.getMessage()]
        assert refused and "1.1" in refused[0], refused
    finally:
        agent.stop()
