"""Broken L2 agents: each subclasses the core fake agent and breaks one rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from stackcore.network.agents.fake import FakeL2Agent
from tests.kit.registry import Broken

M = "tests.kit.network_agent"
R, W, RS = "TestAgentReporting::", "TestAgentWiring::", "TestAgentResync::"
SG = "TestAgentSecurityGroups::"


class NeverReports(FakeL2Agent):
    def report_state(self) -> None:
        return None


class KeepsReportingAfterStop(FakeL2Agent):
    def stop(self) -> None:
        return None  # the thread runs on


class NeverWires(FakeL2Agent):
    def sync_once(self) -> None:
        return None


class ReportsUpWithoutWiring(FakeL2Agent):
    """Tells the server every bound port is ACTIVE, wires nothing."""

    def sync_once(self) -> None:
        for device in self._rpc.get_devices_for_host(self.host, self.AGENT_TYPE):
            if device["status"] != "ACTIVE":
                self._rpc.update_device_up(device["port_id"], self.host)


class IgnoresAdminState(FakeL2Agent):
    def sync_once(self) -> None:
        bound = self._rpc.get_devices_for_host(self.host, self.AGENT_TYPE)
        with self.backend.lock:
            for device in bound:
                if device["port_id"] in self.backend.plugged:
                    self.backend.wired[device["port_id"]] = dict(device["segment"])
        for device in bound:
            if device["admin_state_up"] and device["status"] != "ACTIVE":
                self._rpc.update_device_up(device["port_id"], self.host)
            elif not device["admin_state_up"] and device["status"] == "ACTIVE":
                self._rpc.update_device_down(device["port_id"], self.host)


class KeepsDeletedPortsWired(FakeL2Agent):
    def sync_once(self) -> None:
        kept = dict(self.backend.wired)
        super().sync_once()
        with self.backend.lock:
            for port_id, segment in kept.items():
                self.backend.wired.setdefault(port_id, segment)


class StopUnwiresEverything(FakeL2Agent):
    def stop(self) -> None:
        super().stop()
        with self.backend.lock:
            self.backend.wired.clear()


class IgnoresSecurityGroups(FakeL2Agent):
    """Declares security_groups, wires ports but never asks for their rules: every echo
    passes (an agent left at firewall_driver = noop)."""

    def sync_once(self) -> None:
        bound = {d["port_id"]: d for d in self._rpc.get_devices_for_host(self.host,
                                                                         self.AGENT_TYPE)}
        self._apply(bound, {})


class FiltersPortsWithoutPortSecurity(FakeL2Agent):
    """Filters a port whose port security is off as if it had groups without rules."""

    def sync_once(self) -> None:
        bound = {d["port_id"]: d for d in self._rpc.get_devices_for_host(self.host,
                                                                         self.AGENT_TYPE)}
        security = self._rpc.security_group_rules_for_devices(bound) if bound else {}
        self._apply(bound, {pid: {**info, "port_security_enabled": True}
                            for pid, info in security.items()})


class FiltersButSaysItCannot(FakeL2Agent):
    """Works, but declares security_groups unsupported."""

    capabilities: ClassVar[dict[str, bool]] = {"security_groups": False}


def _b(name: str, cls: type, kills: Sequence[str], expect: str, defect: str) -> Broken:
    return Broken("network.agent", f"zoo-{name}", f"{M}:{cls.__name__}", tuple(kills), expect,
                  "fail", "", defect)


ZOO = [
    _b("never-reports", NeverReports, [R + "test_start_reports_state"],
       "agent 'Fake agent' on host 'conformance-agent' after start(): expected listed alive "
       "within 3 s, got []", "no state report"),
    _b("reports-after-stop", KeepsReportingAfterStop, [R + "test_stop_ends_the_heartbeats"],
       "after stop(): expected seen dead by the server (no heartbeat for 3 s) within 6 s, "
       "got [True]", "stop() does not stop the heartbeats"),
    _b("never-wires", NeverWires,
       [W + "test_plugged_bound_port_is_wired_and_active"],
       "bound to the host, device plugged: expected wired on the backend (wired_ports()) and "
       "ACTIVE within 3 s, got (False, 'DOWN')", "nothing is wired"),
    _b("up-without-wiring", ReportsUpWithoutWiring,
       [W + "test_plugged_bound_port_is_wired_and_active"],
       "got (False, 'ACTIVE')", "reports ports up it never wired (caught on the backend)"),
    _b("ignores-admin-state", IgnoresAdminState, [W + "test_admin_down_port_is_unwired_and_down"],
       "set administratively down: expected no longer wired on the backend, and DOWN within "
       "3 s, got (True, 'DOWN')", "an administratively down port keeps passing traffic"),
    _b("keeps-deleted-wired", KeepsDeletedPortsWired, [W + "test_deleted_port_is_unwired"],
       "after its deletion: expected no longer wired on the backend within 3 s, got True",
       "a deleted port stays wired"),
    _b("stop-unwires", StopUnwiresEverything,
       [RS + "test_stop_keeps_wiring_and_a_new_agent_resyncs"],
       "wiring after stop() (read by a new agent object): expected port",
       "stop() tears the host's wiring down"),
    Broken("network.agent", "zoo-ignores-security-groups", f"{M}:IgnoresSecurityGroups",
           (SG + "test_ingress_rule_opens_and_closes_icmp_statefully",),
           "expected dropped: b's group has no ingress rule, got answered", "fail", "",
           "security group rules are not enforced", "security_groups"),
    Broken("network.agent", "zoo-filters-without-port-security",
           f"{M}:FiltersPortsWithoutPortSecurity",
           (SG + "test_port_without_port_security_is_not_filtered",),
           "after port security was turned off on a: expected the echo answered within",
           "fail", "", "a port without port security is still filtered", "security_groups"),
    Broken("network.agent", "zoo-filters-but-says-it-cannot", f"{M}:FiltersButSaysItCannot",
           (SG + "test_ingress_rule_opens_and_closes_icmp_statefully",
            SG + "test_port_without_port_security_is_not_filtered"),
           "", "unexpected-success", "", "security_groups works but is declared unsupported",
           "security_groups"),
]
