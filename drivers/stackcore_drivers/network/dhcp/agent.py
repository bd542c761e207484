"""The DHCP agent: one per host, serving every network that has a DHCP-enabled subnet.

It talks to the server only over RPC (:mod:`stackcore.network.dhcp.rpc`): ``report_state``
heartbeats on ``network.reports`` like the L2 agents (``agent_type`` ``DHCP agent``), the DHCP
RPC on ``network.dhcp`` for networks, ports and its own DHCP ports, and it consumes
``network.dhcp_agent`` on its host for ``network_changed`` notifications.

Per served network it

1. asks for the network's subnets and ports (``get_network_info``);
2. gets its DHCP port (``get_dhcp_port``: created and bound to this host by the server) and
   plugs it into the L2 datapath in ``qdhcp-<network>`` (:mod:`.interface`);
3. has the DHCP driver (``[dhcp] dhcp_driver``, entry points ``stackcore.network.dhcp_drivers``)
   serve it: ``enable`` when the network is new to it or its subnets/MTU/port changed,
   ``reload_allocations`` when only ports changed.

A network that is gone or has no DHCP subnet left is cleaned up: the driver's ``disable``,
the namespace and the veth pair (and its OVS port) removed, the DHCP port released.

Passes: a full resync at start (how a restart resyncs: it also cleans up the networks it
finds on the host - the driver's ``active_networks`` and its own records under
``<state_dir>/networks`` - that are no longer served) and every ``[dhcp] resync_interval``
seconds; in between, only the networks named by notifications, within milliseconds. Passes run
in one thread, never overlapping. A failure is logged and that network retried at the next
full pass; nothing stops the agent.

With ``[dhcp] enable_isolated_metadata`` (the default) it also serves the compute metadata
service to each network's guests through a proxy in the namespace
(:mod:`.metadata_proxy`): the agent identifies the guest from its port and signs the request.

On SIGTERM the agent stops within 5 s and **leaves dnsmasq and the metadata proxies running**
(as Neutron does): guests keep their leases and renewals while the agent restarts, and the
restarted agent adopts the servers of the networks still served and stops the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.network.dhcp import (
    AGENT_TOPIC,
    AGENT_TYPE,
    DhcpDevice,
    DhcpDriver,
    DhcpNetwork,
    DhcpPort,
    DhcpRPCAPI,
    load_driver,
    netns_name,
)
from stackcore.rpc import Target
from stackcore_drivers.network.dhcp import metadata_proxy
from stackcore_drivers.network.resync import RETRY_INTERVAL, NamespaceAgent

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Server, Transport

LOG = logging.getLogger(__name__)


DHCP_OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("dhcp_driver", default="dnsmasq",
               help="The DHCP driver (entry point of stackcore.network.dhcp_drivers)."),
    cfg.StrOpt("interface_driver", default="openvswitch",
               choices=["openvswitch", "linuxbridge"],
               help="The L2 datapath the DHCP ports are plugged into: openvswitch (a veth "
                    "on [ovs] integration_bridge) or linuxbridge (a tap<port> veth the "
                    "Linux bridge agent enslaves)."),
    cfg.StrOpt("datapath_namespace", default="",
               help="Network namespace the L2 datapath lives in (where ovs-vswitchd or the "
                    "bridges are); empty: the agent's own. For tests simulating hosts."),
    cfg.FloatOpt("resync_interval", default=30.0, min=0.5,
                 help="Seconds between two full resyncs (every network compared with the "
                      "server); changes notified by the server are applied at once."),
    cfg.StrOpt("state_dir", default="",
               help="Directory of the agent's and the DHCP driver's files (dnsmasq "
                    "configurations, hosts files, pid files). Empty: <state_path>/dhcp."),
    cfg.BoolOpt("enable_isolated_metadata", default=True,
                help="Serve the compute metadata service to the guests of every served "
                     "network: 169.254.169.254 on the DHCP port, a route to it via the DHCP "
                     "port handed out by DHCP on every served subnet, and a proxy in the "
                     "network's namespace that identifies the guest from its port and signs "
                     "the request. Needs metadata_proxy_shared_secret."),
    cfg.StrOpt("metadata_url", default="http://127.0.0.1:8775",
               help="The compute metadata service the agent forwards guests' requests to "
                    "(http or https)."),
    cfg.StrOpt("metadata_proxy_shared_secret", default="", secret=True,
               help="The secret shared with the compute metadata service: the agent signs "
                    "each request's X-Instance-ID with it (HMAC-SHA256). Required when "
                    "enable_isolated_metadata is on."),
    cfg.StrOpt("metadata_proxy_socket", default="",
               help="UNIX socket the metadata proxies in the namespaces forward to the agent "
                    "through. Empty: <state_dir>/metadata_proxy."),
])


class NotificationEndpoint:
    """Consumes ``network.dhcp_agent`` on this host: marks the network for the next pass."""

    def __init__(self, agent: DhcpAgent) -> None:
        self.target = Target(AGENT_TOPIC, server=agent.host, version="1.1")
        self._agent = agent

    def network_changed(self, network_id: str, port_ids: list[str] | None = None) -> None:
        self._agent.network_changed(network_id, port_ids)


class DhcpAgent(NamespaceAgent):
    """Serves DHCP for every network with a DHCP subnet on host ``conf.host``."""

    BINARY: ClassVar[str] = "stackcore-dhcp-agent"
    CONF_GROUP: ClassVar[str] = "dhcp"
    AGENT_TYPE: ClassVar[str] = AGENT_TYPE
    AGENT_TOPIC: ClassVar[str] = AGENT_TOPIC

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        from stackcore_drivers.network.agent_base import AGENT_OPTS
        from stackcore_drivers.network.ovs import conf as ovs_conf

        return [("agent", AGENT_OPTS), ("dhcp", DHCP_OPTS), ("ovs", ovs_conf.AGENT_OPTS)]

    @staticmethod
    def driver_dir(conf: cfg.ConfigOpts) -> str:
        """The DHCP driver's ``state_dir`` (``conf`` has the agent's options)."""
        return os.path.join(conf.dhcp.state_dir or os.path.join(conf.state_path, "dhcp"),
                            "driver")

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport,
                 driver: DhcpDriver | None = None) -> None:
        from stackcore import conf as sc_conf

        sc_conf.register(conf, self.list_opts())
        self.conf = conf
        self.host: str = conf.host
        self.transport = transport
        root = conf.dhcp.state_dir or os.path.join(conf.state_path, "dhcp")
        self.records = Path(root) / "networks"
        self.records.mkdir(parents=True, exist_ok=True)
        metadata_proxy.check_conf(conf)
        self.driver: DhcpDriver = driver or load_driver(conf, conf.dhcp.dhcp_driver,
                                                        self.driver_dir(conf))
        self.metadata = conf.dhcp.enable_isolated_metadata
        socket_path = conf.dhcp.metadata_proxy_socket or os.path.join(root, "metadata_proxy")
        #: the proxies in the namespaces (also when metadata is off: to stop those left)
        self.proxies = metadata_proxy.ProxyManager(os.path.join(root, "metadata"),
                                                   socket_path)
        self._metadata_service: metadata_proxy.MetadataService | None = None
        if self.metadata:
            self._metadata_service = metadata_proxy.MetadataService(
                socket_path, conf.dhcp.metadata_url, conf.dhcp.metadata_proxy_shared_secret,
                self._port_by_address)
        self.rpc = DhcpRPCAPI(transport)
        #: what was last given to the driver per network (to tell reload from enable)
        self.served: dict[str, tuple[DhcpNetwork, DhcpDevice]] = {}
        #: per network id, the last failure (cleared when a pass serves it)
        self.errors: dict[str, str] = {}
        # the shared loop's state (.resync): notified networks -> the ports that changed
        self.init_agent(transport)
        self._server: Server | None = None

    def resync_interval(self) -> float:
        return float(self.conf.dhcp.resync_interval)

    # --- plumbing -------------------------------------------------------------------------

    def configurations(self) -> dict[str, Any]:
        return {"dhcp_driver": self.conf.dhcp.dhcp_driver,
                "interface_driver": self.conf.dhcp.interface_driver,
                "networks": len(self.served)}

    # --- one network ----------------------------------------------------------------------

    def _record(self, network_id: str) -> Path:
        return self.records / network_id

    def sync_network(self, network_id: str) -> None:
        """Serve ``network_id`` as the server describes it now, or clean it up if it is gone
        or has no DHCP subnet. Raises on failure (the caller logs and retries)."""
        info = self.rpc.get_network_info(network_id)
        network = DhcpNetwork.from_dict(info) if info is not None else None
        if network is None or not network.dhcp_subnets():
            self.cleanup_network(network_id, release=info is not None)
            return
        self._record(network_id).touch()
        port = DhcpPort.from_dict(self.rpc.get_dhcp_port(network_id, self.host))
        # the port may be new (the network's info was read before it existed)
        if all(p.id != port.id for p in network.ports):
            network = DhcpNetwork(network.id, network.mtu, network.subnets,
                                  (*network.ports, port))
        if self.metadata:
            network = metadata_proxy.with_metadata_route(network, port)
        namespace = netns_name(network_id)
        previous = self.served.get(network_id)
        same_shape = (previous is not None and previous[1].port == port
                      and previous[0].subnets == network.subnets
                      and previous[0].mtu == network.mtu)
        if same_shape and previous is not None:
            if previous[0] != network:
                self.driver.reload_allocations(network)
            device = previous[1]
        else:
            cidrs = {s.id: s.cidr for s in network.dhcp_subnets()}
            extra = [metadata_proxy.METADATA_CIDR] if self.metadata else []
            name = self.plugger.plug(namespace, port, cidrs, network.mtu,
                                     extra=extra)
            device = DhcpDevice(namespace, name, port)
            self.driver.enable(network, device)
        # every pass: a proxy found dead is started again
        if self.metadata:
            self.proxies.ensure(network_id, namespace)
        else:
            self.proxies.stop(network_id)
        self.served[network_id] = (network, device)
        self.errors.pop(network_id, None)

    def _port_by_address(self, network_id: str, address: str) -> dict[str, Any] | None:
        """The metadata service's lookup: the port holding ``address`` on ``network_id``.
        Not limited to :attr:`served`: right after a restart the adopted proxies forward
        before the first pass has filled it. Only the proxies can ask (the socket is root's,
        mode 0600), and they name their own network."""
        return self.rpc.get_port_by_address(network_id, address)

    def sync_ports(self, network_id: str, port_ids: set[str]) -> None:
        """Only ``port_ids`` of a served network changed: re-read those ports and reload the
        server's host entries (the whole network when one is the DHCP port itself)."""
        network, device = self.served[network_id]
        if device.port.id in port_ids:
            self.sync_network(network_id)
            return
        ports = {p.id: p for p in network.ports}
        for port_id in sorted(port_ids):
            info = self.rpc.get_port_info(port_id)
            if info is None or info["network_id"] != network_id:
                ports.pop(port_id, None)
            else:
                ports[port_id] = DhcpPort.from_dict(info)
        updated = DhcpNetwork(network.id, network.mtu, network.subnets,
                              tuple(ports[key] for key in sorted(ports)))
        if updated != network:
            self.driver.reload_allocations(updated)
        self.served[network_id] = (updated, device)

    def cleanup_network(self, network_id: str, release: bool = True) -> None:
        """Stop serving ``network_id``: driver, namespace, records; the DHCP port released
        when ``release`` (the network still exists). Idempotent."""
        self.proxies.stop(network_id)
        self.driver.disable(network_id)
        self.plugger.unplug(netns_name(network_id))
        if release:
            self.rpc.release_dhcp_port(network_id, self.host)
        self._record(network_id).unlink(missing_ok=True)
        if self.served.pop(network_id, None) is not None:
            LOG.info("%s on %s: network %s no longer served", self.BINARY, self.host,
                     network_id)
        self.errors.pop(network_id, None)

    # --- passes ---------------------------------------------------------------------------

    def sync_once(self) -> None:
        """A full resync: every served network synced, every other network found on the
        host cleaned up."""
        with self._pass_lock:
            with self._lock:
                self._dirty.clear()
                self._failed.clear()
            active = set(self.rpc.get_active_networks(self.host))
            found = ({p.name for p in self.records.iterdir()} | self.driver.active_networks()
                     | self.proxies.active_networks() | set(self.served))
            for network_id in sorted(active | found):
                self._guarded(network_id)

    def sync_changed(self) -> None:
        """The networks notified since the last pass."""
        with self._pass_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            for network_id, port_ids in sorted(dirty.items()):
                self._guarded(network_id, port_ids)

    def _guarded(self, network_id: str, port_ids: set[str] | None = None) -> None:
        try:
            if port_ids is not None and network_id in self.served:
                self.sync_ports(network_id, port_ids)
            else:
                self.sync_network(network_id)
        except Exception as err:
            self.errors[network_id] = f"{type(err).__name__}: {err}"
            LOG.exception("%s on %s: network %s not served this pass (retried in %g s)",
                          self.BINARY, self.host, network_id, RETRY_INTERVAL)
            self.failed(network_id)

    def network_changed(self, network_id: str, port_ids: list[str] | None = None) -> None:
        self.mark(network_id, port_ids)

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen for notifications, report, resync fully (start-up problems surface to the
        caller, but a server that does not answer yet is retried by the loop), and keep doing
        all three until :meth:`stop`."""
        self._stop.clear()
        if self._metadata_service is not None:
            self._metadata_service.start()   # before the pass: adopted proxies forward to it
        endpoint = NotificationEndpoint(self)
        self._server = self.transport.serve(endpoint.target, endpoint)
        # Reported before the first pass: the server notifies only the agents it knows, and a
        # change made during the pass must reach this one (it is queued for after the pass).
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
        """Stop listening and the loops (dnsmasq keeps running: see the module doc). A pass
        still running after ``timeout`` seconds is abandoned (idempotent: the next start
        finishes it)."""
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.stop_loops(timeout)
        if self._metadata_service is not None:
            self._metadata_service.stop()
        self.close_plugger()
