"""The OpenFlow side of the OVS agent: ``ovs-ofctl`` against one bridge.

ovs-vswitchd serves each bridge's OpenFlow management socket at ``<rundir>/<bridge>.mgmt``;
the agent talks to it with ``ovs-ofctl`` (argument lists, never a shell), OpenFlow 1.4 so that
changes go in one bundle (applied atomically: a bridge never forwards with half a table).

:meth:`OfctlBridge.replace_flows` is what makes the agent idempotent and its restarts clean:
``ovs-ofctl replace-flows`` reads the bridge's table, compares it with the wanted flows (as
parsed flows, not as text) and sends only the difference - missing flows added, flows with
other actions modified, every other flow deleted. A pass that changes nothing sends nothing,
and stale flows (a deleted network, a previous run's leftovers) disappear. The agent
therefore owns *every* flow of its bridges, as Neutron's agent owns its cookie's flows.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence

from stackcore import exception

LOG = logging.getLogger(__name__)

#: Bundles (atomic replace-flows) need OpenFlow 1.4; bridges enable OF 1.0-1.5 by default.
OPENFLOW_VERSION = "OpenFlow14"
#: Dumps are read in OpenFlow 1.0 + Nicira extensions, whose text is the syntax the flows are
#: written in (``mod_vlan_vid``, ``set_tunnel``) rather than OF 1.3+'s push/set_field forms.
DUMP_VERSION = "OpenFlow10"
DEFAULT_RUNDIR = "/run/openvswitch"


def rundir_for(ovsdb_connection: str, configured: str = "") -> str:
    """Where the ``<bridge>.mgmt`` sockets are: ``configured`` if set, else the directory of a
    ``unix:`` OVSDB socket (ovs-vswitchd and ovsdb-server share their run directory), else
    :data:`DEFAULT_RUNDIR`."""
    if configured:
        return configured
    if ovsdb_connection.startswith("unix:"):
        return os.path.dirname(ovsdb_connection[len("unix:"):]) or DEFAULT_RUNDIR
    return DEFAULT_RUNDIR


class OfctlBridge:
    """OpenFlow access to one bridge through ``ovs-ofctl``. Raises DriverError naming the
    bridge and ovs-ofctl's message when a command fails."""

    def __init__(self, bridge: str, rundir: str, timeout: float = 10.0) -> None:
        self.bridge = bridge
        self.target = f"unix:{os.path.join(rundir, bridge)}.mgmt"
        self.timeout = timeout

    def _run(self, args: Sequence[str], stdin: str | None = None,
             version: str = OPENFLOW_VERSION) -> str:
        binary = shutil.which("ovs-ofctl")
        if binary is None:
            raise exception.DriverError("ovs-ofctl is not installed (package openvswitch-common)")
        command = [binary, "-O", version, *args]
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                    timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise exception.DriverError(
                f"ovs-ofctl {args[0]} {self.bridge}: no answer in {self.timeout:g} s") from None
        if result.returncode != 0:
            raise exception.DriverError(
                f"ovs-ofctl {args[0]} {self.bridge}: {result.stderr.strip()}")
        return result.stdout

    def replace_flows(self, flows: Sequence[str]) -> None:
        """Make the bridge's flow table exactly ``flows`` (ovs-ofctl flow syntax), changing
        only what differs, in one atomic bundle."""
        self._run(["--bundle", "replace-flows", self.target, "-"],
                  stdin="".join(f"{flow}\n" for flow in flows))

    def change_flows(self, previous: Sequence[str], flows: Sequence[str]) -> int:
        """Change the table from ``previous`` (what this object's caller last made it) to
        ``flows`` by sending only the flows that differ, as flow mods in one atomic bundle:
        ``delete_strict`` for each flow gone (unless a new flow of the same match replaces
        it) and ``add`` for each new one (an add replaces a flow of the same match). Much
        cheaper than :meth:`replace_flows` on a big table (no dump, no parse of the table);
        flows that others added are left alone, so callers replace the whole table from time
        to time. Returns the number of flow mods sent."""
        old, new = set(previous), set(flows)
        added = [flow for flow in flows if flow not in old]
        added_matches = {_match(flow) for flow in added}
        removed = [_match(flow) for flow in previous
                   if flow not in new and _match(flow) not in added_matches]
        mods = [f"delete_strict {match}" for match in removed] + [f"add {f}" for f in added]
        if mods:
            self._run(["--bundle", "add-flows", self.target, "-"],
                      stdin="".join(f"{mod}\n" for mod in mods))
        return len(mods)

    def dump_flows(self) -> list[str]:
        """The bridge's flows without statistics, one string each (for checks and tests)."""
        out = self._run(["--no-stats", "dump-flows", self.target], version=DUMP_VERSION)
        return [line.strip() for line in out.splitlines()
                if line.strip() and not line.startswith(("OFPST_FLOW", "NXST_FLOW"))]

    def dump_flows_with_stats(self) -> list[str]:
        """The bridge's flows with packet counters (tests read ``n_packets``)."""
        out = self._run(["dump-flows", self.target], version=DUMP_VERSION)
        return [line.strip() for line in out.splitlines()
                if line.strip() and not line.startswith(("OFPST_FLOW", "NXST_FLOW"))]


def _match(flow: str) -> str:
    """The match part of a flow (``table=..,priority=..,<fields>``): what ``delete_strict``
    names it by."""
    return flow.split(" actions=", 1)[0]


class Conntrack:
    """ovs-vswitchd's connection tracker (``ovs-appctl dpctl/...``): the userspace datapath's
    conntrack lives in ovs-vswitchd, not in the kernel, so the kernel's tools cannot see it.
    The control socket is ``<rundir>/ovs-vswitchd.ctl`` when the daemon was started with it
    (this project's instances), else ovs-appctl finds ``ovs-vswitchd`` by its pidfile."""

    def __init__(self, rundir: str, timeout: float = 10.0) -> None:
        ctl = os.path.join(rundir, "ovs-vswitchd.ctl")
        self.target = ctl if os.path.exists(ctl) else "ovs-vswitchd"
        self.rundir = rundir
        self.timeout = timeout

    def flush_zone(self, zone: int) -> None:
        """Forget every connection of conntrack zone ``zone`` (an integer, 0-65535)."""
        if not 0 <= int(zone) <= 0xFFFF:
            raise exception.Invalid("zone", "must be 0-65535", zone)
        binary = shutil.which("ovs-appctl")
        if binary is None:
            raise exception.DriverError("ovs-appctl is not installed (package "
                                        "openvswitch-common)")
        try:
            result = subprocess.run(
                [binary, "-t", self.target, "dpctl/flush-conntrack", f"zone={int(zone)}"],
                capture_output=True, text=True, timeout=self.timeout, check=False,
                env={**os.environ, "OVS_RUNDIR": self.rundir})
        except subprocess.TimeoutExpired:
            raise exception.DriverError(
                f"ovs-appctl dpctl/flush-conntrack zone={zone}: no answer in "
                f"{self.timeout:g} s") from None
        if result.returncode != 0:
            raise exception.DriverError(
                f"ovs-appctl dpctl/flush-conntrack zone={zone}: {result.stderr.strip()}")
