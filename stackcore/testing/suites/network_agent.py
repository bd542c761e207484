"""L2 agent conformance suite (family ``network.agent``).

Run it from an agent package's test module (``from stackcore.testing.suites.network_agent
import *``) with ``--stackcore-driver network.agent:<name>`` and a config file with the agent's
own groups (e.g. ``[ovs]``) and, for the server, ``[ml2] mechanism_drivers`` naming the
mechanism driver that binds ports for the agent's ``AGENT_TYPE`` (default: the core ``fake``
driver, which the kit points at the agent's type with ``[mech_fake] agent_type``; it binds where
the agent reports ``network_types`` and ``mappings`` in its configurations).

The kit runs an ML2 server (an embedded Cloud with the ``network`` service only; SQLite unless
``[database] connection`` is set) and the agent under test in this process over the in-process
RPC transport, as the embedded default does. The agent's host is ``conformance-agent``; the kit
shortens ``[agent] report_interval`` / ``polling_interval`` (to 0.5 s / 0.2 s) and the server's
``[network] agent_down_time`` (to 3 s). Ports are on a flat network on ``physnet1`` (flat
needs nothing of the kernel beyond bridges): the agent must be configured to wire
``physnet1``.

The backend is checked through the agent's test hooks, not through what it reports: the kit
plugs a port's device the way the hypervisor would (``plug_test_device``) and reads what the
host's backend passes (``wired_ports``, read from OVSDB, the kernel ...).

What is checked, by feature:

* ``reporting`` - ``start`` returns at once and the agent is then listed alive with its type,
  host and JSON configurations; after ``stop`` (prompt) its heartbeats end: the server sees it
  dead;
* ``wiring`` - a port bound to its host whose device is plugged is wired on the backend and
  reported ACTIVE; an administratively down port is unwired and reported DOWN (and wired again
  once up); a deleted port is unwired;
* ``resync`` - a stopped agent leaves the wiring in place; a new agent object wires what was
  bound while none ran;
* capability ``security_groups`` (the agent's ``test_ping`` sends an echo through its real data
  path) - two ports in new groups without ingress rules cannot ping each other; an ICMP
  ingress rule lets one ping the other and the replies come back although the sender allows
  no ingress (stateful); removing the rule stops it again; a port whose port security is
  turned off is reached although its groups had no ingress rule. The network then has a subnet
  (``10.199.0.0/24``): ports send from their fixed IP. An agent configured not to filter
  (``[securitygroup] firewall_driver = noop``) fails these tests, as it should.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.network.contracts.agent import L2AgentPlugin
from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.plugin import verify_after

__all__ = ["TestAgentReporting", "TestAgentResync", "TestAgentSecurityGroups",
           "TestAgentWiring", "agent_cloud", "make_agent"]

FAMILY = pytest.mark.family("network.agent")
HOST = "conformance-agent"
_PLUGGED = pytest.StashKey[list[tuple[L2AgentPlugin, dict[str, Any]]]]()
DOWN_TIME = 3
REPORT_INTERVAL, POLLING_INTERVAL = 0.5, 0.2
PHYSNET = "physnet1"
SUBNET = "10.199.0.0/24"


@pytest.fixture
def agent_cloud(stackcore_target: DriverUnderTest, tmp_path: Path
                ) -> Iterator[stackcore.Cloud]:
    """The ML2 server the agent reports to (network service only)."""
    conf = stackcore_target.conf
    groups = {name for name in conf if isinstance(conf[name], type(conf.ml2))}
    if "agent" not in groups:
        raise check.fail("the agent's options", "an [agent] group (list_opts including "
                         "stackcore.network.AGENT_OPTS: report_interval, polling_interval)",
                         f"groups {sorted(groups)}")
    for option, value in (("host", HOST),):
        sc_conf.set_override(conf, "DEFAULT", option, value)
    sc_conf.set_override(conf, "agent", "report_interval", REPORT_INTERVAL)
    sc_conf.set_override(conf, "agent", "polling_interval", POLLING_INTERVAL)
    agent_type = getattr(stackcore_target.plugin.cls, "AGENT_TYPE", "")
    overrides: dict[str, dict[str, Any]] = {
        "DEFAULT": {"state_path": str(tmp_path / "server")},
        "network": {"agent_down_time": DOWN_TIME},
    }
    if "fake" in conf.ml2.mechanism_drivers:  # the default: pointed at the agent's type
        overrides["mech_fake"] = {"agent_type": agent_type}
    cloud = stackcore.Cloud(list(stackcore_target.config_files), overrides=overrides,
                            services=["network"])
    yield cloud
    cloud.close()


@pytest.fixture
def make_agent(request: pytest.FixtureRequest, stackcore_target: DriverUnderTest,
               agent_cloud: stackcore.Cloud) -> Callable[[], L2AgentPlugin]:
    """New agent objects on the kit's host; every one is stopped right after the test."""
    made: list[L2AgentPlugin] = []
    request.node.stash[_PLUGGED] = []

    def make() -> L2AgentPlugin:
        agent: L2AgentPlugin = check.step(
            "building the agent (Agent(conf, transport))",
            lambda: stackcore_target.new(agent_cloud.transport))
        check.instance(agent, L2AgentPlugin, "the agent object")
        made.append(agent)
        return agent

    def stop_all() -> None:
        errors = []
        for _, port in request.node.stash[_PLUGGED]:
            try:  # what the hypervisor does at the end; through the newest agent object
                made[-1].unplug_test_device(port)  # (an older one may have been stopped)
            except Exception as err:  # noqa: BLE001 - every device is tried
                errors.append(f"unplug_test_device({port['id']}): {err}")
        for agent in made:
            check.step("stop()", agent.stop)
        check.empty(errors, "unplugging the test's devices")

    verify_after(request, "stopping the test's agents", stop_all)
    return make


def _listed(cloud: stackcore.Cloud, agent_type: str) -> list[Any]:
    return list(cloud.network.list_agents(host=HOST, agent_type=agent_type))


def _wait(what: str, expected: str, read: Callable[[], Any], done: Callable[[Any], bool],
          timeout: float) -> Any:
    """Poll ``read`` until ``done`` (bounded); fail naming the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise check.fail(what, f"{expected} within {timeout:g} s", f"{value!r}")
        time.sleep(0.05)


def _started(agent: L2AgentPlugin, cloud: stackcore.Cloud, settle: float) -> None:
    began = time.monotonic()
    check.step("start()", agent.start)
    took = time.monotonic() - began
    check.that(took < 10, "start()", "to return at once (the work runs in its thread)",
               f"{took:.1f} s")
    agent_type = type(agent).AGENT_TYPE
    _wait(f"agent {agent_type!r} on host {HOST!r} after start()", "listed alive",
          lambda: [(a.agent_type, a.alive) for a in _listed(cloud, agent_type)],
          lambda rows: (agent_type, True) in rows, settle)


def _port_view(port: Any) -> dict[str, Any]:
    return {"id": port.id, "mac_address": port.mac_address, "vif_type": port.vif_type,
            "vif_details": dict(port.vif_details), "network_id": port.network_id,
            "fixed_ips": [{"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}
                          for ip in port.fixed_ips]}


def _network(cloud: stackcore.Cloud) -> Any:
    """The test's flat network on physnet1 (one per cloud: a flat physnet holds one)."""
    found = [n for n in cloud.network.list_networks() if n.name == "conformance-agent"]
    if found:
        return found[0]
    net = cloud.network.create_network("conformance-agent", network_type="flat",
                                       physical_network=PHYSNET)
    cloud.network.create_subnet(net.id, SUBNET, gateway_ip=None)
    return net


def _bound_port(cloud: stackcore.Cloud, agent: L2AgentPlugin,
                plugged: list[tuple[L2AgentPlugin, dict[str, Any]]],
                **attrs: Any) -> Any:
    """A port on the flat network bound to the agent's host, its device plugged."""
    net = _network(cloud)
    port = cloud.network.create_port(net.id, host=HOST, device_owner="compute:conformance",
                                      device_id=str(uuid.uuid4()), **attrs)
    failures = [str(f) for f in port.binding_failures]
    check.that(port.vif_type not in ("unbound", "binding_failed"),
               f"binding of a port on host {HOST!r} (flat network on {PHYSNET})",
               "bound by the mechanism driver of the agent's type", failures or port.vif_type)
    check.step("plug_test_device() (what the hypervisor does)",
               lambda: agent.plug_test_device(_port_view(port)))
    plugged.append((agent, _port_view(port)))
    return port


def _plugged(request: pytest.FixtureRequest) -> list[tuple[L2AgentPlugin, dict[str, Any]]]:
    """The devices the test plugged (unplugged right after it, as the hypervisor would)."""
    plugged: list[tuple[L2AgentPlugin, dict[str, Any]]] = request.node.stash[_PLUGGED]
    return plugged


def _wired(agent: L2AgentPlugin) -> set[str]:
    return set(check.step("wired_ports()", agent.wired_ports))


def _status(cloud: stackcore.Cloud, port_id: str) -> str:
    try:
        return str(cloud.network.get_port(port_id).status)
    except exception.NotFound:
        return "<deleted>"


def _expect_wired(agent: L2AgentPlugin, cloud: stackcore.Cloud, port_id: str,
                  when: str, settle: float) -> None:
    _wait(f"port {port_id} {when}", "wired on the backend (wired_ports()) and ACTIVE",
          lambda: (port_id in _wired(agent), _status(cloud, port_id)),
          lambda seen: seen == (True, "ACTIVE"), settle)


@FAMILY
@pytest.mark.feature("reporting")
class TestAgentReporting:
    def test_start_reports_state(self, agent_cloud: stackcore.Cloud,
                                 make_agent: Callable[[], L2AgentPlugin],
                                 stackcore_settle: float) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        (row,) = _listed(agent_cloud, type(agent).AGENT_TYPE)
        check.instance(row.configurations, dict, "the agent's reported configurations")

    def test_stop_ends_the_heartbeats(self, agent_cloud: stackcore.Cloud,
                                      make_agent: Callable[[], L2AgentPlugin],
                                 stackcore_settle: float) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        began = time.monotonic()
        check.step("stop()", agent.stop)
        took = time.monotonic() - began
        check.that(took < 10, "stop()", "to return promptly", f"{took:.1f} s")
        agent_type = type(agent).AGENT_TYPE
        _wait(f"agent {agent_type!r} after stop()",
              f"seen dead by the server (no heartbeat for {DOWN_TIME} s)",
              lambda: [a.alive for a in _listed(agent_cloud, agent_type)],
              lambda alive: alive == [False], DOWN_TIME + stackcore_settle)


@FAMILY
@pytest.mark.feature("wiring")
class TestAgentWiring:
    def test_plugged_bound_port_is_wired_and_active(
        self, request: pytest.FixtureRequest, agent_cloud: stackcore.Cloud,
        make_agent: Callable[[], L2AgentPlugin], stackcore_settle: float,
    ) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        port = _bound_port(agent_cloud, agent, _plugged(request))
        _expect_wired(agent, agent_cloud, port.id, "bound to the host, device plugged",
                      stackcore_settle)

    def test_admin_down_port_is_unwired_and_down(
        self, request: pytest.FixtureRequest, agent_cloud: stackcore.Cloud,
        make_agent: Callable[[], L2AgentPlugin], stackcore_settle: float,
    ) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        port = _bound_port(agent_cloud, agent, _plugged(request))
        _expect_wired(agent, agent_cloud, port.id, "bound to the host, device plugged",
                      stackcore_settle)
        agent_cloud.network.update_port(port.id, admin_state_up=False)
        _wait(f"port {port.id} set administratively down",
              "no longer wired on the backend, and DOWN",
              lambda: (port.id in _wired(agent), _status(agent_cloud, port.id)),
              lambda seen: seen == (False, "DOWN"), stackcore_settle)
        agent_cloud.network.update_port(port.id, admin_state_up=True)
        _expect_wired(agent, agent_cloud, port.id, "set administratively up again",
                      stackcore_settle)

    def test_deleted_port_is_unwired(
        self, request: pytest.FixtureRequest, agent_cloud: stackcore.Cloud,
        make_agent: Callable[[], L2AgentPlugin], stackcore_settle: float,
    ) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        port = _bound_port(agent_cloud, agent, _plugged(request))
        _expect_wired(agent, agent_cloud, port.id, "bound to the host, device plugged",
                      stackcore_settle)
        agent_cloud.network.delete_port(port.id)
        _wait(f"port {port.id} after its deletion", "no longer wired on the backend",
              lambda: port.id in _wired(agent), lambda wired: not wired, stackcore_settle)


@FAMILY
@pytest.mark.feature("resync")
class TestAgentResync:
    def test_stop_keeps_wiring_and_a_new_agent_resyncs(
        self, request: pytest.FixtureRequest, agent_cloud: stackcore.Cloud,
        make_agent: Callable[[], L2AgentPlugin], stackcore_settle: float,
    ) -> None:
        first = make_agent()
        _started(first, agent_cloud, stackcore_settle)
        kept = _bound_port(agent_cloud, first, _plugged(request))
        _expect_wired(first, agent_cloud, kept.id, "bound to the host, device plugged",
                      stackcore_settle)
        check.step("stop()", first.stop)
        second = make_agent()  # a restarted agent: a new object, same host
        wired = _wired(second)
        check.that(kept.id in wired, "wiring after stop() (read by a new agent object)",
                   f"port {kept.id} still wired (stop leaves the wiring in place)",
                   sorted(wired))
        # bound while no agent ran
        while_down = _bound_port(agent_cloud, second, _plugged(request))
        _started(second, agent_cloud, stackcore_settle)
        _expect_wired(second, agent_cloud, while_down.id, "bound while no agent ran",
                      stackcore_settle)
        _expect_wired(second, agent_cloud, kept.id, "wired by the previous agent",
                      stackcore_settle)


def _ip(port: Any) -> str:
    return str(port.fixed_ips[0].ip_address)


def _pings(agent: L2AgentPlugin, src: Any, dst: Any) -> bool:
    return bool(check.step(f"test_ping() from port {src.id} to {_ip(dst)}",
                           lambda: agent.test_ping(_port_view(src), _ip(dst))))


def _expect_ping(agent: L2AgentPlugin, src: Any, dst: Any, passes: bool, when: str,
                 settle: float) -> None:
    expected = "the echo answered" if passes else "the echo dropped (no reply)"
    _wait(f"ping from port {src.id} ({_ip(src)}) to port {dst.id} ({_ip(dst)}) {when}",
          expected, lambda: _pings(agent, src, dst), lambda ok: ok == passes, settle)


@FAMILY
@pytest.mark.capability("security_groups")
class TestAgentSecurityGroups:
    def test_ingress_rule_opens_and_closes_icmp_statefully(
        self, request: pytest.FixtureRequest, agent_cloud: stackcore.Cloud,
        make_agent: Callable[[], L2AgentPlugin], stackcore_settle: float,
    ) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        net = agent_cloud.network
        client = net.create_security_group(f"client-{uuid.uuid4().hex[:6]}")
        server = net.create_security_group(f"server-{uuid.uuid4().hex[:6]}")
        a = _bound_port(agent_cloud, agent, _plugged(request), security_groups=[client.id])
        b = _bound_port(agent_cloud, agent, _plugged(request), security_groups=[server.id])
        for port in (a, b):
            _expect_wired(agent, agent_cloud, port.id, "bound, device plugged",
                          stackcore_settle)
        check.that(not _pings(agent, a, b), f"ping from port a to port b ({_ip(b)})",
                   "dropped: b's group has no ingress rule", "answered")
        rule = net.create_security_group_rule(server.id, "ingress", protocol="icmp")
        _expect_ping(agent, a, b, True, "after an ICMP ingress rule on b's group",
                     stackcore_settle)
        check.that(not _pings(agent, b, a), f"ping from port b to port a ({_ip(a)})",
                   "dropped: a's group has no ingress rule (a's replies came back as part of "
                   "its own connection only)", "answered")
        net.delete_security_group_rule(rule.id)
        _expect_ping(agent, a, b, False, "after the ICMP rule was deleted", stackcore_settle)

    def test_port_without_port_security_is_not_filtered(
        self, request: pytest.FixtureRequest, agent_cloud: stackcore.Cloud,
        make_agent: Callable[[], L2AgentPlugin], stackcore_settle: float,
    ) -> None:
        agent = make_agent()
        _started(agent, agent_cloud, stackcore_settle)
        net = agent_cloud.network
        closed = net.create_security_group(f"closed-{uuid.uuid4().hex[:6]}")
        a = _bound_port(agent_cloud, agent, _plugged(request), security_groups=[closed.id])
        b = _bound_port(agent_cloud, agent, _plugged(request), security_groups=[closed.id])
        for port in (a, b):
            _expect_wired(agent, agent_cloud, port.id, "bound, device plugged",
                          stackcore_settle)
        _expect_ping(agent, b, a, False, "(a's group has no ingress rule)", stackcore_settle)
        net.update_port(a.id, port_security_enabled=False, security_groups=[])
        _expect_ping(agent, b, a, True, "after port security was turned off on a",
                     stackcore_settle)
