"""The core's ``fake`` DHCP driver: serves nothing on the wire, keeps what a real server would
read in files (``<state_dir>/<network>/hosts.json``, ``server``), so the conformance kit and
the unit tests exercise the DHCP agent and the contract without dnsmasq or namespaces."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from stackcore.network.dhcp.driver import DhcpDevice, DhcpDriver, DhcpNetwork, HostEntry

if TYPE_CHECKING:  # annotations only: listing the DHCP plugins must not import oslo.config
    from oslo_config import cfg


class FakeDhcpDriver(DhcpDriver):
    VERSION: ClassVar[str] = "1.0"
    capabilities: ClassVar[dict[str, bool]] = {"ipv6": True}

    def __init__(self, conf: cfg.ConfigOpts, state_dir: str) -> None:
        super().__init__(conf, state_dir)
        self.root = Path(state_dir)
        self.root.mkdir(parents=True, exist_ok=True)

    def _write(self, network: DhcpNetwork) -> None:
        entries = [dataclasses.asdict(e) for e in network.host_entries((4, 6))]
        path = self.root / network.id / "hosts.json"
        path.with_suffix(".tmp").write_text(json.dumps(entries))
        os.replace(path.with_suffix(".tmp"), path)
        options = {s.id: [list(s.dns_nameservers), [list(r) for r in s.served_routes()]]
                   for s in network.dhcp_subnets((4, 6))}
        opts = self.root / network.id / "options.json"
        opts.with_suffix(".tmp").write_text(json.dumps(options))
        os.replace(opts.with_suffix(".tmp"), opts)

    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        path = self.root / network.id
        path.mkdir(exist_ok=True)
        # DNS servers and routes are options re-read without a restart (as dnsmasq's opts file)
        shape = json.dumps([[dataclasses.asdict(dataclasses.replace(
            s, dns_nameservers=(), host_routes=())) for s in network.dhcp_subnets((4, 6))],
                            device.interface])
        server = path / "server"
        if not server.exists() or (path / "shape").read_text() != shape:
            (path / "shape").write_text(shape)
            server.write_text(uuid.uuid4().hex)   # a "restart"
        self._write(network)

    def reload_allocations(self, network: DhcpNetwork) -> None:
        if not (self.root / network.id / "server").exists():
            raise RuntimeError(f"network {network.id} is not enabled")
        self._write(network)

    def disable(self, network_id: str) -> None:
        shutil.rmtree(self.root / network_id, ignore_errors=True)

    def active_networks(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir()}

    def served_hosts(self, network_id: str) -> list[HostEntry]:
        try:
            raw = json.loads((self.root / network_id / "hosts.json").read_text())
        except FileNotFoundError:
            return []
        return [HostEntry(**e) for e in raw]

    def served_subnet_options(self, network_id: str) -> dict[str, tuple[tuple[str, ...],
                                                                        tuple[tuple[str, str],
                                                                              ...]]]:
        try:
            raw = json.loads((self.root / network_id / "options.json").read_text())
        except FileNotFoundError:
            return {}
        return {k: (tuple(dns), tuple((d, h) for d, h in routes))
                for k, (dns, routes) in raw.items()}

    def server_id(self, network_id: str) -> str | None:
        try:
            return (self.root / network_id / "server").read_text()
        except FileNotFoundError:
            return None
