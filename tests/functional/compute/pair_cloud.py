"""A deployment of the core on the two-libvirtd lab (:mod:`libvirt_pair`): the API process
(scheduler, volume, network) and one compute process per lab host, each its own
``stackcore.Cloud`` with its own ``[libvirt]`` settings (the host's daemon, instances
directory and lab address), talking over a RabbitMQ virtual host and sharing one database -
as in production, where each compute host runs its own service with its own configuration.

Used by the live-migration functional tests and ``benchmarks/live_migration.py``; nothing
here depends on pytest.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import libvirt

import stackcore

from .libvirt_pair import LabLibvirtd, wait_for

HOSTS = ("kvm-a", "kvm-b")


class PairDeployment:
    """The API process and the compute process of each lab host."""

    def __init__(self, root: Path, pair: tuple[LabLibvirtd, LabLibvirtd], rabbit_url: str,
                 database_url: str, virt_type: str,
                 api_sections: dict[str, dict[str, Any]] | None = None,
                 service_down_time: int = 60,
                 libvirt_options: dict[str, Any] | None = None) -> None:
        """``api_sections``: more option groups of the API process (volume backends, image
        stores); ``libvirt_options``: more ``[libvirt]`` options of every compute host.
        Heartbeats go every second; a host is down ``service_down_time`` seconds
        after its last (an evacuation test need not wait the default minute)."""
        self.pair = dict(zip(HOSTS, pair, strict=True))
        self.base: dict[str, dict[str, Any]] = {
            "DEFAULT": {"transport_url": rabbit_url, "report_interval": 1,
                        "service_down_time": service_down_time, "periodic_interval": 3600},
            "database": {"connection": database_url}}
        self.root, self.virt_type = root, virt_type
        self.libvirt_options = dict(libvirt_options or {})
        self.clouds: list[stackcore.Cloud] = []
        #: the compute process of each host that runs now
        self.compute: dict[str, stackcore.Cloud] = {}
        try:
            self.api = self._cloud(root / "api", services=("scheduler", "volume", "network"),
                                   fake_hosts=0, extra=api_sections)
            for name in HOSTS:
                self.start(name)
            self.await_hosts(set(HOSTS), up=True)
        except BaseException:
            self.close()
            raise

    def start(self, host: str) -> stackcore.Cloud:
        """Start the compute process of ``host`` (its start-up reconciliation included)."""
        daemon = self.pair[host]
        self.compute[host] = self._cloud(self.root / host, services=("compute",), extra={
            "compute": {"driver": "libvirt", "hosts": [host]},
            "libvirt": {"connection_uri": daemon.uri,
                        "instances_path": str(daemon.instances_path),
                        "virt_type": self.virt_type,
                        "live_migration_inbound_addr": daemon.address,
                        "soft_reboot_timeout": 2, "shutdown_timeout": 2,
                        **self.libvirt_options}})
        return self.compute[host]

    def stop(self, host: str) -> None:
        """Stop the compute process of ``host`` (its daemon and guests keep running, as when
        a compute service dies) and wait until the API sees the host down."""
        cloud = self.compute.pop(host)
        cloud.close()
        self.clouds.remove(cloud)
        self.await_hosts({host}, up=False)

    def await_hosts(self, hosts: set[str], up: bool, timeout: float = 60) -> None:
        """Until the API sees every one of ``hosts`` up (or down); LabError after
        ``timeout`` s naming them and the last state seen."""
        def state() -> dict[str, bool]:
            return {h.host: h.up for h in self.api.compute.list_hosts()}

        wait_for(lambda: all(state().get(h, False) == up for h in hosts), timeout,
                 f"compute hosts {sorted(hosts)} reported {'up' if up else 'down'}",
                 lambda: f"last state: {state()}")

    def _cloud(self, state: Path, services: tuple[str, ...], fake_hosts: int | None = None,
               extra: dict[str, dict[str, Any]] | None = None) -> stackcore.Cloud:
        overrides = {**self.base, "DEFAULT": {**self.base["DEFAULT"],
                                              "state_path": str(state)}, **(extra or {})}
        kwargs: dict[str, Any] = {"overrides": overrides, "services": services}
        if fake_hosts is not None:
            kwargs["fake_hosts"] = fake_hosts
        cloud = stackcore.Cloud(**kwargs)
        self.clouds.append(cloud)
        return cloud

    def domains(self, host: str) -> dict[str, Any]:
        """{name: (state, persistent, disk sources, owner host)} of the host's daemon."""
        from stackcore_drivers.libvirt import domain_xml

        conn = libvirt.open(self.pair[host].uri)
        try:
            found = {}
            for dom in conn.listAllDomains(0):
                doc = domain_xml.parse(dom.XMLDesc(0))
                owner = domain_xml.ownership(doc)
                found[dom.name()] = (
                    dom.state()[0], bool(dom.isPersistent()),
                    [s.get("file", "") for s in doc.findall("devices/disk/source")
                     if s.get("file")], owner.host if owner else "")
            return found
        finally:
            conn.close()

    def add_blank_image(self, path: Path, ram_mb: int) -> None:
        """Flavor ``kvm.small`` (1 vCPU, ``ram_mb``, 1 GiB) and the public image ``blank`` (an
        empty 64 MiB qcow2 at ``path``: the guest idles in its firmware)."""
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"],
                       check=True, capture_output=True)
        self.api.compute.create_flavor("kvm.small", vcpus=1, ram_mb=ram_mb, disk_gb=1)
        self.api.compute.register_image("blank", str(path), disk_format="qcow2",
                                        properties={"architecture": "x86_64"},
                                        visibility="public")

    def close(self) -> None:
        for cloud in reversed(self.clouds):
            cloud.close()
