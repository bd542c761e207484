"""The ``dnsmasq`` DHCP driver: one dnsmasq per network, in the network's namespace.

Per network, under ``<state_dir>/<network_id>/``:

* ``dnsmasq.conf`` - everything dnsmasq is started with (the command line is only
  ``ip netns exec <ns> dnsmasq --conf-file=<this file>``): the interface, one static
  ``dhcp-range`` per IPv4 DHCP subnet, the paths below. Every value in it is validated
  (addresses parsed, interface and path names checked) before it is written. A change of this
  file (subnets, interface, lease time) restarts dnsmasq;
* ``hosts`` (``dhcp-hostsfile``: ``MAC,IP,hostname`` per port address) and ``opts``
  (``dhcp-optsfile``, per subnet tag: router, MTU, the subnet's ``dns_nameservers`` as
  option 6 and, when it has ``host_routes``, them plus the default route via the gateway as
  classless static routes, option 121 and Microsoft's 249 for old Windows clients, as Neutron
  writes them) - rewritten atomically, then dnsmasq is sent SIGHUP, which makes it re-read
  both (dnsmasq(8): SIGHUP re-reads --dhcp-hostsfile and --dhcp-optsfile): a port, DNS server
  or route change never restarts it;
* ``pid`` - written by dnsmasq. A pid counts as this network's dnsmasq only if that process's
  command line names this network's ``dnsmasq.conf`` (a reused pid is never signalled).

Ranges are ``static``: dnsmasq answers only the MACs of its hosts file, with their fixed IP.
DNS is off (``port=0``): no name service in the namespace yet; DNS servers are sent only when
the subnet lists them (``dns_nameservers``), otherwise no DNS server option is sent.
No lease database (``leasefile-ro``): leases follow from the hosts file alone.

dnsmasq keeps running when the agent stops (guests keep renewing while the agent restarts);
the restarted agent adopts it through the pid file, and stops it when its network goes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from stackcore import exception, lazy
from stackcore.network.agents import unblock_stop_signals
from stackcore.network.dhcp import DhcpDevice, DhcpDriver, DhcpNetwork, HostEntry

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

OPTS = lazy.options(lambda cfg: [
    cfg.IntOpt("lease_duration", default=86400, min=120,
               help="Seconds a lease lasts (dnsmasq's dhcp-range lease time)."),
    cfg.StrOpt("user", default="root",
               help="User dnsmasq runs as after start-up. It re-reads the hosts file as this "
                    "user on every port change, so the agent's state directory must be "
                    "readable by it (the default, root, always can)."),
    cfg.StrOpt("binary", default="dnsmasq", help="The dnsmasq program."),
    cfg.FloatOpt("start_timeout", default=10.0, min=1.0,
                 help="Seconds dnsmasq is given to start and write its pid file, or to exit "
                      "after SIGTERM (then it is killed)."),
])

#: dnsmasq's lease table is bounded by the served subnets' sizes, and this (Neutron's
#: ``dnsmasq_lease_max`` default)
LEASE_MAX = 2 ** 24
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_NETWORK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _atomic_write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds it; True when it changed."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)   # dnsmasq re-reading on SIGHUP sees the old file or the new one
    return True


class DnsmasqDriver(DhcpDriver):
    """dnsmasq in ``qdhcp-<network>``: static IPv4 ranges, hosts file reloaded by SIGHUP."""

    VERSION: ClassVar[str] = "1.0"
    capabilities: ClassVar[dict[str, bool]] = {"ipv6": False}

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("dnsmasq", OPTS)]

    def __init__(self, conf: cfg.ConfigOpts, state_dir: str) -> None:
        from stackcore import conf as sc_conf

        super().__init__(conf, state_dir)
        sc_conf.register(conf, [("dnsmasq", OPTS)])
        root = os.path.abspath(state_dir)
        if not _SAFE_PATH.match(root):
            # it is written into dnsmasq.conf: no character that could end a value there
            raise exception.ConfigError(
                f"the DHCP state directory {root!r} may hold only letters, digits and "
                "'_./+-' (it is written into dnsmasq's configuration)")
        if not _USER.match(conf.dnsmasq.user):
            raise exception.ConfigError(f"[dnsmasq] user {conf.dnsmasq.user!r} is not a user "
                                        "name")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # --- files ----------------------------------------------------------------------------

    def _dir(self, network_id: str) -> Path:
        if not _NETWORK_ID.match(network_id):
            raise exception.Invalid("network_id", "must be a lowercase UUID", network_id)
        return self.root / network_id

    def _config(self, network: DhcpNetwork, device: DhcpDevice, path: Path) -> str:
        if not _IFNAME.match(device.interface):
            raise exception.Invalid("device.interface", "must be an interface name",
                                    device.interface)
        lease = int(self.conf.dnsmasq.lease_duration)
        addresses = sum(ipaddress.ip_network(s.cidr).num_addresses
                        for s in network.dhcp_subnets())
        lines = [
            "# written by stackcore's dnsmasq DHCP driver; rewritten on every change",
            "no-hosts", "no-resolv", "port=0", "bind-interfaces",
            f"interface={device.interface}", "except-interface=lo",
            f"user={self.conf.dnsmasq.user}",
            f"pid-file={path / 'pid'}", f"dhcp-hostsfile={path / 'hosts'}",
            f"dhcp-optsfile={path / 'opts'}", "leasefile-ro", "dhcp-authoritative",
            # from the subnets, not the ports: a port change must never change this file
            f"dhcp-lease-max={min(addresses, LEASE_MAX)}",
        ]
        for subnet in network.dhcp_subnets():
            net = ipaddress.ip_network(subnet.cidr)
            lines.append(f"dhcp-range=set:subnet-{subnet.id},{net.network_address},static,"
                         f"{net.netmask},{lease}s")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _hosts(entries: Sequence[HostEntry]) -> str:
        return "".join(f"{e.mac_address},{e.ip_address},{e.hostname}\n" for e in entries)

    @staticmethod
    def _opts(network: DhcpNetwork) -> str:
        lines = []
        for subnet in network.dhcp_subnets():
            tag = f"tag:subnet-{subnet.id}"
            # no gateway: an empty router option, so the client installs no default route
            lines.append(f"{tag},option:router" + (f",{subnet.gateway_ip}"
                                                   if subnet.gateway_ip else ""))
            if network.mtu:
                lines.append(f"{tag},option:mtu,{network.mtu}")
            # values were parsed as addresses/CIDRs: no comma or newline can reach the file
            if subnet.dns_nameservers:
                lines.append(f"{tag},option:dns-server," + ",".join(subnet.dns_nameservers))
            routes = ",".join(f"{dest},{hop}" for dest, hop in subnet.served_routes())
            if routes:
                lines.append(f"{tag},option:classless-static-route,{routes}")
                lines.append(f"{tag},249,{routes}")
        return "\n".join(lines) + "\n"

    # --- the process ----------------------------------------------------------------------

    def _pid(self, network_id: str) -> int | None:
        """The pid of this network's running dnsmasq (checked against its command line)."""
        path = self._dir(network_id)
        try:
            pid = int((path / "pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        wanted = f"--conf-file={path / 'dnsmasq.conf'}".encode()
        return pid if wanted in cmdline else None

    def _start(self, network_id: str, namespace: str) -> None:
        path = self._dir(network_id)
        (path / "pid").unlink(missing_ok=True)
        argv = ["ip", "netns", "exec", namespace, self.conf.dnsmasq.binary,
                f"--conf-file={path / 'dnsmasq.conf'}"]
        with open(path / "start.log", "w") as log:
            # dnsmasq forks its daemon and exits once it runs (or with the reason it cannot):
            # its output goes to a file, as the daemon may keep the descriptors it inherited
            # the agent blocks SIGTERM in every thread (stackcore.lifecycle) and the mask
            # survives fork and exec: without this, dnsmasq would ignore the SIGTERM of _stop
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    timeout=self.conf.dnsmasq.start_timeout, check=False,
                                    preexec_fn=unblock_stop_signals)
        if result.returncode != 0:
            raise exception.DriverError(
                f"dnsmasq for network {network_id} did not start (exit {result.returncode}): "
                f"{(path / 'start.log').read_text().strip()[-500:]}")
        deadline = time.monotonic() + self.conf.dnsmasq.start_timeout
        while self._pid(network_id) is None:
            if time.monotonic() > deadline:
                raise exception.DriverError(f"dnsmasq for network {network_id} started but "
                                            f"wrote no pid file {path / 'pid'}")
            time.sleep(0.01)   # dnsmasq's daemon writes it right after the fork
        LOG.info("dnsmasq for network %s started (pid %s)", network_id, self._pid(network_id))

    def _stop(self, network_id: str) -> None:
        pid = self._pid(network_id)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.conf.dnsmasq.start_timeout
        while self._pid(network_id) == pid:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        LOG.info("dnsmasq for network %s stopped (pid %s)", network_id, pid)

    # --- the contract ---------------------------------------------------------------------

    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        path = self._dir(network.id)
        path.mkdir(exist_ok=True)
        config = self._config(network, device, path)
        _atomic_write(path / "hosts", self._hosts(network.host_entries()))
        _atomic_write(path / "opts", self._opts(network))
        changed = _atomic_write(path / "dnsmasq.conf", config)
        pid = self._pid(network.id)
        if pid is not None and not changed:
            os.kill(pid, signal.SIGHUP)   # the host entries may have changed meanwhile
            return
        if pid is not None:
            self._stop(network.id)   # subnets or interface changed: dnsmasq reads them once
        self._start(network.id, device.namespace)

    def reload_allocations(self, network: DhcpNetwork) -> None:
        path = self._dir(network.id)
        pid = self._pid(network.id)
        if pid is None:
            raise exception.DriverError(f"no dnsmasq runs for network {network.id}: it must "
                                        "be enabled first")
        hosts = _atomic_write(path / "hosts", self._hosts(network.host_entries()))
        opts = _atomic_write(path / "opts", self._opts(network))
        if hosts or opts:
            os.kill(pid, signal.SIGHUP)

    def disable(self, network_id: str) -> None:
        path = self._dir(network_id)
        if not path.exists():
            return
        self._stop(network_id)
        for child in path.iterdir():
            child.unlink()
        path.rmdir()

    def active_networks(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir() and _NETWORK_ID.match(p.name)}

    # --- observation ----------------------------------------------------------------------

    def served_hosts(self, network_id: str) -> list[HostEntry]:
        if self._pid(network_id) is None:
            return []
        entries = []
        for line in (self._dir(network_id) / "hosts").read_text().splitlines():
            mac, ip, hostname = line.split(",")
            entries.append(HostEntry(mac, ip, hostname))
        return entries

    def served_subnet_options(self, network_id: str) -> dict[str, tuple[tuple[str, ...],
                                                                        tuple[tuple[str, str],
                                                                              ...]]]:
        if self._pid(network_id) is None:
            return {}
        served: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {}
        for line in (self._dir(network_id) / "opts").read_text().splitlines():
            tag, option, *values = line.split(",")
            subnet_id = tag.removeprefix("tag:subnet-")
            dns, routes = served.get(subnet_id, ((), ()))
            if option == "option:dns-server":
                dns = tuple(values)
            elif option == "option:classless-static-route":
                routes = tuple(zip(values[::2], values[1::2], strict=True))
            served[subnet_id] = (dns, routes)
        return served

    def server_id(self, network_id: str) -> str | None:
        pid = self._pid(network_id)
        return None if pid is None else str(pid)
