"""The L3 agent: the routers this host serves, each in a ``qrouter-<id>`` namespace.

It talks to the server only over RPC (:mod:`stackcore.network.l3.rpc`): ``report_state``
heartbeats on ``network.reports`` (``agent_type`` ``L3 agent``), ``sync_routers`` on
``network.l3`` (which also claims the routers nobody serves: one agent per router), and it
consumes ``network.l3_agent`` on its host for ``routers_updated`` casts.

Per router it

1. makes the namespace, turns IP forwarding on in it;
2. plugs the gateway port (``qg-<port>``) and the interface ports (``qr-<port>``) into the L2
   datapath like the DHCP agent plugs its ports (the same :mod:`..dhcp.interface` driver:
   Open vSwitch or Linux bridge), with their addresses - the gateway device also holds the
   floating IPs (/32) - and removes the devices of ports the router no longer has;
3. sets the default route via the external subnet's gateway;
4. replaces the router's nftables table (SNAT, floating IPs: :mod:`.ruleset`) atomically
   with ``nft -f -`` when its text changed, and flushes the conntrack entries of floating IPs
   that went away (:mod:`.conntrack`);
5. reports the outcome to the server (``update_router_status``): ``ACTIVE`` with the floating
   IPs it applied, or ``ERROR`` with the failure - only when it differs from the last report,
   so a full resync of unchanged routers costs no RPC.

What was applied is recorded per router under ``<state_dir>/routers`` (the floating IPs): a
restarted agent adopts the namespaces it finds - plugging is idempotent, so a router that is
already right is left as it is, no device is re-made - and still knows which floating IPs'
connections to flush. Namespaces of routers this host no longer serves are removed.

The passes are the DHCP agent's (:mod:`..resync`): a full resync at start and every ``[l3]
resync_interval`` seconds, the notified routers in between, a failed router again a second
later. On SIGTERM the agent stops within 5 s and leaves the namespaces in place (the routers
keep forwarding while it restarts).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.network.dhcp import DhcpPort
from stackcore.network.l3 import AGENT_TOPIC, AGENT_TYPE, L3RPCAPI, NETNS_PREFIX, netns_name
from stackcore.rpc import Target
from stackcore_drivers.network.dhcp import interface
from stackcore_drivers.network.l3 import ruleset
from stackcore_drivers.network.resync import RETRY_INTERVAL, NamespaceAgent

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Server, Transport

LOG = logging.getLogger(__name__)
TIMEOUT = 30

L3_OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("interface_driver", default="openvswitch",
               choices=["openvswitch", "linuxbridge"],
               help="The L2 datapath the routers' ports are plugged into: openvswitch (a veth "
                    "on [ovs] integration_bridge) or linuxbridge (a tap<port> veth the Linux "
                    "bridge agent enslaves)."),
    cfg.StrOpt("datapath_namespace", default="",
               help="Network namespace the L2 datapath lives in (where ovs-vswitchd or the "
                    "bridges are); empty: the agent's own. For tests simulating hosts."),
    cfg.FloatOpt("resync_interval", default=30.0, min=0.5,
                 help="Seconds between two full resyncs (every router compared with the "
                      "server); changes notified by the server are applied at once."),
    cfg.StrOpt("state_dir", default="",
               help="Directory of the agent's records (per router: the floating IPs "
                    "applied). Empty: <state_path>/l3."),
])


def _run(argv: list[str], stdin: str | None = None) -> str:
    """Run ``argv`` (an argument list, never a shell); DriverError naming it on failure."""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        raise exception.DriverError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


class NotificationEndpoint:
    """Consumes ``network.l3_agent`` on this host: marks the routers for the next pass."""

    def __init__(self, agent: L3Agent) -> None:
        self.target = Target(AGENT_TOPIC, server=agent.host, version="1.0")
        self._agent = agent

    def routers_updated(self, router_ids: list[str]) -> None:
        for router_id in router_ids:
            self._agent.mark(router_id)


class L3Agent(NamespaceAgent):
    """Serves the routers of host ``conf.host`` (module doc)."""

    BINARY: ClassVar[str] = "stackcore-l3-agent"
    CONF_GROUP: ClassVar[str] = "l3"
    AGENT_TYPE: ClassVar[str] = AGENT_TYPE
    AGENT_TOPIC: ClassVar[str] = AGENT_TOPIC

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        from stackcore_drivers.network.agent_base import AGENT_OPTS
        from stackcore_drivers.network.ovs import conf as ovs_conf

        return [("agent", AGENT_OPTS), ("l3", L3_OPTS), ("ovs", ovs_conf.AGENT_OPTS)]

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport) -> None:
        from stackcore import conf as sc_conf

        sc_conf.register(conf, self.list_opts())
        self.conf = conf
        self.host: str = conf.host
        self.transport = transport
        root = conf.l3.state_dir or os.path.join(conf.state_path, "l3")
        self.records = Path(root) / "routers"
        self.records.mkdir(parents=True, exist_ok=True)
        self.rpc = L3RPCAPI(transport)
        #: router id -> the router as last applied (the server's dict)
        self.served: dict[str, dict[str, Any]] = {}
        #: router id -> the nftables text last applied
        self.rulesets: dict[str, str] = {}
        #: per router id, the last failure (cleared when a pass serves it)
        self.errors: dict[str, str] = {}
        #: router id -> (status, fault, floating IPs applied) last reported to the server
        self.reported: dict[str, tuple[str, str | None, tuple[tuple[str, str], ...]]] = {}
        self.init_agent(transport)
        self._server: Server | None = None

    def resync_interval(self) -> float:
        return float(self.conf.l3.resync_interval)

    # --- plumbing -------------------------------------------------------------------------

    def configurations(self) -> dict[str, Any]:
        # the routers whose last pass failed, with why: visible in list_agents (the
        # server has no other view of the data plane)
        return {"interface_driver": self.conf.l3.interface_driver,
                "routers": len(self.served), "failed_routers": dict(sorted(self.errors.items()))}

    # --- records --------------------------------------------------------------------------

    def _record(self, router_id: str) -> Path:
        return self.records / router_id

    def _recorded_fips(self, router_id: str) -> set[str]:
        try:
            return set(json.loads(self._record(router_id).read_text())["floating_ips"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return set()

    # --- one router -----------------------------------------------------------------------

    def sync_router(self, info: dict[str, Any]) -> None:
        """Make router ``info`` (the server's dict) so in its namespace (module doc).
        Raises on failure (the caller logs and retries)."""
        router_id = str(info["id"])
        namespace = netns_name(router_id)
        plugger = self.plugger
        gateway = info.get("gateway")
        fips = [f for f in info.get("floating_ips") or [] if f.get("fixed_ip_address")]
        wanted: dict[str, tuple[dict[str, Any], str, list[str]]] = {}
        if gateway is not None:
            wanted[interface.ns_device(gateway["port_id"], "qg-")] = (
                gateway, "qg-", [f"{f['floating_ip_address']}/32" for f in fips])
        for port in info.get("interfaces") or []:
            wanted[interface.ns_device(port["port_id"], "qr-")] = (port, "qr-", [])
        for port, prefix, extra in wanted.values():
            plugger.plug(namespace, DhcpPort.from_dict({
                "id": port["port_id"], "mac_address": port["mac_address"],
                "fixed_ips": [{"subnet_id": port["subnet_id"],
                               "ip_address": port["ip_address"]}]}),
                {port["subnet_id"]: port["cidr"]}, int(port.get("mtu") or 0),
                prefix=prefix, exclusive=False, extra=extra)
        for name in interface.links(namespace):
            if name.startswith(("qg-", "qr-")) and name not in wanted:
                plugger.unplug_device(namespace, name)
        if namespace in interface.namespaces(namespace):
            _run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                  "net.ipv4.ip_forward=1"])
        if gateway is not None and gateway.get("subnet_gateway_ip"):
            _run(["ip", "-n", namespace, "route", "replace", "default", "via",
                  str(gateway["subnet_gateway_ip"]), "dev",
                  interface.ns_device(gateway["port_id"], "qg-")])
        text = ruleset.build(
            interface.ns_device(gateway["port_id"], "qg-") if gateway else None,
            gateway["ip_address"] if gateway else None, bool(info.get("enable_snat", True)),
            [p["cidr"] for p in info.get("interfaces") or []], fips)
        if self.rulesets.get(router_id) != text:
            _run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], stdin=text)
            self.rulesets[router_id] = text
        now = {str(f["floating_ip_address"]) for f in fips}
        gone = sorted(self._recorded_fips(router_id) - now)
        if gone:
            flushed = _run(["ip", "netns", "exec", namespace, sys.executable, "-m",
                            "stackcore_drivers.network.l3.conntrack", *gone]).strip()
            LOG.info("router %s: floating IPs %s removed, %s conntrack entries flushed",
                     router_id, ", ".join(gone), flushed)
        self._record(router_id).write_text(json.dumps({"floating_ips": sorted(now)}))
        if router_id not in self.served:
            LOG.info("%s on %s: router %s served in %s", self.BINARY, self.host, router_id,
                     namespace)
        self.served[router_id] = info
        self.errors.pop(router_id, None)
        self._report(router_id, "ACTIVE", None, fips)

    def _report(self, router_id: str, status: str, fault: str | None,
                fips: Sequence[dict[str, Any]]) -> None:
        """Tell the server the router's status (step 5 of the module doc). A report that
        cannot be sent is logged and sent again after the next pass: the status is what
        users read, never a reason to undo what the pass did."""
        applied = tuple(sorted((str(f["id"]), str(f["fixed_ip_address"])) for f in fips
                               if f.get("fixed_ip_address")))
        report = (status, fault, applied)
        if self.reported.get(router_id) == report:
            return
        try:
            self.rpc.update_router_status(
                self.host, router_id, status, fault,
                [{"id": i, "fixed_ip_address": a} for i, a in applied])
        except Exception as err:  # noqa: BLE001 - see the docstring
            self.reported.pop(router_id, None)
            LOG.warning("%s on %s: status %s of router %s not reported: %s", self.BINARY,
                        self.host, status, router_id, err)
            return
        self.reported[router_id] = report

    def cleanup_router(self, router_id: str) -> None:
        """Stop serving ``router_id``: its devices, namespace and record. Idempotent."""
        self.plugger.unplug(netns_name(router_id))
        self._record(router_id).unlink(missing_ok=True)
        self.rulesets.pop(router_id, None)
        self.reported.pop(router_id, None)
        if self.served.pop(router_id, None) is not None:
            LOG.info("%s on %s: router %s no longer served", self.BINARY, self.host,
                     router_id)
        self.errors.pop(router_id, None)

    # --- passes ---------------------------------------------------------------------------

    def _found(self) -> set[str]:
        """Routers this host has traces of: namespaces, records, what it served."""
        return ({n[len(NETNS_PREFIX):] for n in interface.namespaces(NETNS_PREFIX)}
                | {p.name for p in self.records.iterdir()} | set(self.served))

    def _apply(self, infos: list[dict[str, Any]], asked: set[str]) -> None:
        by_id = {str(r["id"]): r for r in infos if r.get("admin_state_up", True)}
        for router_id in sorted(asked | set(by_id)):
            try:
                if router_id in by_id:
                    self.sync_router(by_id[router_id])
                else:
                    self.cleanup_router(router_id)
            except Exception as err:
                self.errors[router_id] = f"{type(err).__name__}: {err}"
                LOG.exception("%s on %s: router %s not served this pass (retried in %g s)",
                              self.BINARY, self.host, router_id, RETRY_INTERVAL)
                self.failed(router_id)
                if router_id in by_id:
                    self._report(router_id, "ERROR", self.errors[router_id],
                                 by_id[router_id].get("floating_ips") or [])

    def sync_once(self) -> None:
        """A full resync: every router of this host synced, every other one found here
        cleaned up."""
        with self._pass_lock:
            with self._lock:
                self._dirty.clear()
                self._failed.clear()
            infos = self.rpc.sync_routers(self.host)
            self._apply(infos, self._found())

    def sync_changed(self) -> None:
        """The routers notified since the last pass (those the server no longer gives this
        host are cleaned up)."""
        with self._pass_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            if not dirty:
                return
            try:
                infos = self.rpc.sync_routers(self.host, sorted(dirty))
            except Exception:
                for router_id in dirty:
                    self.failed(router_id)
                raise
            self._apply(infos, set(dirty))

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen for notifications, report, resync fully, and keep doing all three until
        :meth:`stop` (a server that does not answer yet is retried by the loop)."""
        self._stop.clear()
        endpoint = NotificationEndpoint(self)
        self._server = self.transport.serve(endpoint.target, endpoint)
        self.report_state()
        self._synced = False
        try:
            self.sync_once()
            self._synced = True
        except exception.RPCError as err:
            LOG.warning("%s on %s: first pass failed, the server does not answer yet: %s",
                        self.BINARY, self.host, err)
        self.run_loops()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop listening and the loops; the namespaces stay (module doc)."""
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.stop_loops(timeout)
        self.close_plugger()
