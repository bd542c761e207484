"""The host's stats report (:data:`stackcore.compute.stats.SCHEMA`) read from libvirt.

Sources: ``virNodeGetInfo`` (CPUs, memory), the capabilities XML (CPU arch, model, vendor,
topology, features; the guest types it can run), ``virNodeGetFreeMemory``, the filesystem of
the instances directory (``statvfs``) and the running domains' vCPUs.
"""

from __future__ import annotations

import os
from typing import Any

from stackcore_drivers.libvirt import domain_xml

GiB = 1024**3
MiB = 1024**2


def cpu_info(capabilities: Any, nodeinfo: list[Any]) -> dict[str, Any]:
    cpu = capabilities.find("host/cpu")
    arch = (cpu.findtext("arch") if cpu is not None else None) or str(nodeinfo[0])
    topology = cpu.find("topology") if cpu is not None else None
    if topology is not None:
        sockets = int(topology.get("sockets", 1))
        cores = int(topology.get("cores", 1))
        threads = int(topology.get("threads", 1))
    else:  # the test driver has no <topology> under <cpu>: use the node info
        sockets, cores, threads = (max(1, int(nodeinfo[i])) for i in (5, 6, 7))
    names: set[str] = set()
    if cpu is not None:
        names.update(f.get("name") or "" for f in cpu.findall("feature"))
        legacy = cpu.find("features")  # the test driver lists <features><pae/>...</features>
        if legacy is not None:
            names.update(child.tag for child in legacy)
    features = sorted(n for n in names if n)
    return {
        "arch": arch,
        "model": (cpu.findtext("model") if cpu is not None else None) or "",
        "vendor": (cpu.findtext("vendor") if cpu is not None else None) or "",
        "topology": {"sockets": max(1, sockets), "cores": max(1, cores),
                     "threads": max(1, threads)},
        "features": features,
    }


def supported_instances(capabilities: Any) -> list[list[str]]:
    found: set[tuple[str, str, str]] = set()
    for guest in capabilities.findall("guest"):
        os_type = guest.findtext("os_type") or ""
        arch = guest.find("arch")
        if arch is None or not os_type:
            continue
        for domain in arch.findall("domain"):
            arch_name, domain_type = arch.get("name"), domain.get("type")
            if arch_name and domain_type:
                found.add((arch_name, domain_type, os_type))
    return [list(item) for item in sorted(found)]


def report(conn: Any, instances_path: str) -> dict[str, Any]:
    """The full stats report of the host behind ``conn``."""
    import libvirt
    nodeinfo = conn.getInfo()  # [arch, memory MiB, cpus, MHz, nodes, sockets, cores, threads]
    capabilities = domain_xml.parse(conn.getCapabilities())
    memory_mb = int(nodeinfo[1])
    free_mb = int(conn.getFreeMemory()) // MiB
    vcpus_used = 0
    for domain in conn.listAllDomains(0):
        try:
            if domain.isActive():
                vcpus_used += int(domain.info()[3])
        except libvirt.libvirtError as err:
            # A domain undefined between the listing and the query is not an error of the
            # report: it simply uses nothing any more.
            if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
    fs = os.statvfs(instances_path)
    total_gb = fs.f_blocks * fs.f_frsize // GiB
    free_gb = fs.f_bavail * fs.f_frsize // GiB
    return {
        "vcpus": int(nodeinfo[2]),
        "memory_mb": memory_mb,
        "local_gb": total_gb,
        "vcpus_used": vcpus_used,
        "memory_mb_used": max(0, memory_mb - free_mb),
        "local_gb_used": max(0, total_gb - free_gb),
        "hypervisor_type": str(conn.getType()),
        "hypervisor_version": int(conn.getVersion()),
        "hypervisor_hostname": str(conn.getHostname()),
        "cpu_info": cpu_info(capabilities, nodeinfo),
        "supported_instances": supported_instances(capabilities),
    }
