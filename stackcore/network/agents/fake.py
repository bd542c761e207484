"""The fake L2 agent: an in-memory "host backend", for tests, templates and the embedded default.

It behaves like a real agent over the real RPC: it reports its state (``agent_type`` ``Fake
agent``, ``configurations`` with ``network_types`` and ``mappings``, which the ``fake``
mechanism driver with ``[mech_fake] agent_type = Fake agent`` binds against), asks the server
for the ports bound to its host, "wires" those whose device the hypervisor plugged and that are
administratively up, unwires the others, and reports each port up or down when that changes.

The host backend is a process-wide table keyed by ``state_path`` and host (like the fake
hypervisor's), so a new agent object - a restarted agent - finds the wiring the previous one
left, and the conformance kit reads it (:meth:`FakeL2Agent.wired_ports`) without asking the
agent object.

It enforces security groups in its model of the host (capability ``security_groups``): each
pass stores the wired ports' rules (``security_group_rules_for_devices``) in the host table,
and :meth:`FakeL2Agent.test_ping` answers from them - an echo passes when the sender's egress
and the receiver's ingress rules allow it (either side without port security: no check);
the reply is part of the allowed connection (stateful).

Failures can be injected with ``[fake_agent] fail_on`` (``sync``, ``report``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.network.agents.rpc import AgentRPCAPI
from stackcore.network.agents.state import AgentStateRPCAPI
from stackcore.network.contracts.agent import AGENT_OPTS, L2AgentPlugin

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)

AGENT_TYPE = "Fake agent"

OPTS = lazy.options(lambda cfg: [
    cfg.ListOpt("network_types", default=["flat", "vlan", "vxlan"],
                help="Network types the fake agent reports it can wire."),
    cfg.DictOpt("mappings", default={"physnet1": "br-fake"},
                help="physnet:bridge pairs the fake agent reports."),
    cfg.ListOpt("fail_on", default=[],
                help="Steps that raise DriverError: 'sync', 'report' (failure injection)."),
])


@dataclasses.dataclass
class HostBackend:
    """One fake host: the devices the hypervisor plugged and the ports wired to them."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    plugged: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    wired: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: per wired port: its fixed IPs and what the server said it must enforce
    addresses: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    security: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


_HOSTS: dict[tuple[str, str], HostBackend] = {}
_HOSTS_LOCK = threading.Lock()


def host_backend(state_path: str, host: str) -> HostBackend:
    with _HOSTS_LOCK:
        return _HOSTS.setdefault((state_path, host), HostBackend())


class FakeL2Agent(L2AgentPlugin):
    """An L2 agent whose backend is :class:`HostBackend`."""

    VERSION: ClassVar[str] = "1.0"
    AGENT_TYPE: ClassVar[str] = AGENT_TYPE
    BINARY: ClassVar[str] = "stackcore-fake-agent"
    capabilities: ClassVar[dict[str, bool]] = {"security_groups": True}

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport) -> None:
        from stackcore import conf as sc_conf

        sc_conf.register(conf, self.list_opts())
        self.conf = conf
        self.opts = conf.fake_agent
        self.host: str = conf.host
        self.backend = host_backend(conf.state_path, self.host)
        self._state_rpc = AgentStateRPCAPI(transport)
        self._rpc = AgentRPCAPI(transport)
        self._start_flag = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("agent", AGENT_OPTS), ("fake_agent", OPTS)]

    def _maybe_fail(self, step: str) -> None:
        if step in self.opts.fail_on:
            raise exception.DriverError(f"injected failure in fake agent {step} on {self.host}")

    # --- the two jobs ---------------------------------------------------------------------

    def report_state(self) -> None:
        self._maybe_fail("report")
        self._state_rpc.report_state({
            "agent_type": self.AGENT_TYPE, "binary": self.BINARY, "host": self.host,
            "configurations": {"network_types": list(self.opts.network_types),
                               "mappings": dict(self.opts.mappings)},
        }, start_flag=self._start_flag)
        self._start_flag = False

    def sync_once(self) -> None:
        """Wire the bound ports whose device is plugged and that are up; unwire the rest;
        report the ports whose state changed."""
        self._maybe_fail("sync")
        bound = {d["port_id"]: d for d in self._rpc.get_devices_for_host(self.host,
                                                                         self.AGENT_TYPE)}
        security = self._rpc.security_group_rules_for_devices(bound) if bound else {}
        self._apply(bound, security)

    def _apply(self, bound: Mapping[str, Mapping[str, Any]],
                 security: Mapping[str, Mapping[str, Any]]) -> None:
        """Store what to enforce, wire and unwire, then report (the host table's one
        update per pass)."""
        with self.backend.lock:
            self.backend.security = {pid: dict(info) for pid, info in security.items()}
            self.backend.addresses = {pid: [ip["ip_address"] for ip in d["fixed_ips"]]
                                      for pid, d in bound.items()}
            for port_id in list(self.backend.wired):
                device = bound.get(port_id)
                if device is None or not device["admin_state_up"] \
                        or port_id not in self.backend.plugged:
                    del self.backend.wired[port_id]
            for port_id, device in bound.items():
                if port_id in self.backend.plugged and device["admin_state_up"]:
                    self.backend.wired[port_id] = dict(device["segment"])
            wired = set(self.backend.wired)
        self._report(bound, wired)

    def _report(self, bound: Mapping[str, Mapping[str, Any]], wired: set[str]) -> None:
        for port_id, device in sorted(bound.items()):
            if port_id in wired and device["status"] != "ACTIVE":
                self._rpc.update_device_up(port_id, self.host)
            elif port_id not in wired and device["status"] == "ACTIVE":
                self._rpc.update_device_down(port_id, self.host)

    # --- the contract ---------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"fake-agent-{self.host}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_report = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_report:
                    next_report = now + float(self.conf.agent.report_interval)
                    self.report_state()
                self.sync_once()
            except Exception as err:  # noqa: BLE001 - an agent never dies on an error
                LOG.warning("fake agent on %s: %s", self.host, err)
            self._stop.wait(float(self.conf.agent.polling_interval))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    # --- observation (conformance kit) ----------------------------------------------------

    def plug_test_device(self, port: Mapping[str, Any]) -> None:
        with self.backend.lock:
            self.backend.plugged[str(port["id"])] = {"mac_address": port.get("mac_address")}

    def unplug_test_device(self, port: Mapping[str, Any]) -> None:
        with self.backend.lock:
            self.backend.plugged.pop(str(port["id"]), None)

    def wired_ports(self) -> set[str]:
        with self.backend.lock:
            return set(self.backend.wired)

    def test_ping(self, port: Mapping[str, Any], address: str) -> bool:
        """An echo from ``port`` to the wired port holding ``address`` passes when both are
        wired and their stored rules allow it (see the module doc)."""
        src = str(port["id"])
        with self.backend.lock:
            if src not in self.backend.wired:
                return False
            dst = next((pid for pid in self.backend.wired
                        if address in self.backend.addresses.get(pid, ())), None)
            source_ips = self.backend.addresses.get(src, [])
            if dst is None or not source_ips:
                return False
            return (_allows(self.backend.security.get(src), "egress", address)
                    and _allows(self.backend.security.get(dst), "ingress", source_ips[0]))


def _allows(info: Mapping[str, Any] | None, direction: str, remote: str) -> bool:
    """Whether ``info``'s rules allow an ICMP echo request in ``direction`` with ``remote``
    the other end (None or port security off: everything passes)."""
    import ipaddress

    if info is None or not info["port_security_enabled"]:
        return True
    address = ipaddress.ip_address(remote)
    for rule in info["rules"]:
        if rule["direction"] != direction or rule["ethertype"] != f"IPv{address.version}":
            continue
        if rule["protocol"] not in (None, 1, 58):
            continue
        if rule["protocol"] is not None and rule["port_range_min"] not in (None, 8, 128):
            continue
        prefix = rule["remote_ip_prefix"]
        if prefix and address not in ipaddress.ip_network(prefix, strict=False):
            continue
        return True
    return False


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    return [("agent", AGENT_OPTS), ("fake_agent", OPTS)]
