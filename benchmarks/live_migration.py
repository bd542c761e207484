"""Live migration of a running server between two compute hosts, against ``virsh migrate``.

The two hosts are the lab of tests/functional/compute/libvirt_pair.py: two libvirtds on this
machine, each in its own mount and network namespace on the lab bridge (``sc-lab0``), with
its own address, host UUID and instances directory. An idle guest (``--memory-mib`` MiB,
1 vCPU, a ``--disk-mib`` MiB local qcow2 disk: no OS, it idles in its firmware) is moved from
one host to the other and back, ``--rounds`` moves in all after ``--warm-up`` untimed ones,
and the median of each figure is reported:

* **raw**: what an operator runs by hand for a live block migration between two hosts with
  local disks: ``qemu-img create`` of the destination disk (libvirt copies into an existing
  file only), then ``virsh migrate --live --copy-storage-all --persistent --undefinesource
  --xml <destination XML> --listen-address <dest> <name> <dest URI> tcp://<dest>``
  (client-managed: virsh drives both daemons). Total: wall time of those two commands
  (``virsh migrate`` alone reported too); downtime: ``Total downtime`` of
  ``virsh domjobinfo --completed`` on the destination (the pause between the last memory
  pass on the source and the resume on the destination, as QEMU measured it);
* **framework** (to come: :func:`framework_migrate`): ``cloud.compute.live_migrate_server``
  on an embedded cloud whose two compute hosts' libvirt drivers use the two daemons; the
  same guest, total and downtime measured the same way, judged against the raw figures of
  the same run.

Until the framework side exists, ``--raw-only`` runs and prints the raw figures alone.

    . /var/lib/stackcore-backends/env.sh
    .venv/bin/python benchmarks/live_migration.py --raw-only [--rounds 6] [--memory-mib 256]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import libvirt  # noqa: E402

from tests.functional.compute import libvirt_pair as lab  # noqa: E402


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run tools/backends/up.sh and source its env.sh")
    return value


@dataclass
class Figures:
    """One side's measured moves (seconds, milliseconds)."""

    total_s: list[float] = field(default_factory=list)
    downtime_ms: list[float] = field(default_factory=list)
    migrate_s: list[float] = field(default_factory=list)   # raw: `virsh migrate` alone

    def medians(self) -> dict[str, float]:
        found = {"total_ms": statistics.median(self.total_s) * 1000,
                 "downtime_ms": statistics.median(self.downtime_ms)}
        if self.migrate_s:
            found["migrate_ms"] = statistics.median(self.migrate_s) * 1000
        return found


def _ms(value: str) -> float:
    """``"39           ms"`` (virsh domjobinfo) -> 39.0."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*ms", value.strip())
    if not match:
        raise RuntimeError(f"not a time in ms: {value!r}")
    return float(match.group(1))


def raw_migrate(source: lab.LabLibvirtd, dest: lab.LabLibvirtd, name: str,
                work: Path) -> tuple[float, float, float]:
    """Move the running domain ``name`` from ``source`` to ``dest`` by hand: the destination
    disk created, then ``virsh migrate``. (total s, ``virsh migrate`` s, downtime ms)."""
    conn = source.connect()
    try:
        source_xml = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
    finally:
        conn.close()
    new_paths = {dev: str(dest.instances_path / Path(path).name)
                 for dev, path in lab.disk_paths(source_xml).items()}
    xml_file = work / f"{name}-to-{dest.name}.xml"
    xml_file.write_text(lab.dest_xml(source_xml, new_paths))
    command = lab.virsh_migrate_command(source, dest, name, xml_file)
    start = time.perf_counter()
    lab.precreate_disks(source_xml, new_paths)
    migrate_start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    end = time.perf_counter()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}\n"
                           f"{lab.qemu_log_tail(dest, name)}\n{dest.log_tail()}")
    job = lab.virsh_completed_job(dest.uri, name)
    if "Total downtime" not in job:
        raise RuntimeError(f"no downtime in the completed job of {name} on {dest.name}: {job}")
    # the source's copy of the disk stays behind (libvirt leaves it): removed, not timed
    for path in lab.disk_paths(source_xml).values():
        os.unlink(path)
    return end - start, end - migrate_start, _ms(job["Total downtime"])


def framework_migrate(cloud: Any, server_id: str, host: str,
                      block_migration: bool = True) -> tuple[float, float]:
    """THE HOOK OF THE FRAMEWORK SIDE (not implemented yet: raises NotImplementedError).

    To move ``server_id`` live to the compute host ``host`` through the framework:
    ``cloud.compute.live_migrate_server(server_id, host=host, block_migration=...)`` (it
    waits until the server is ACTIVE again), timed from the call to its return, on an
    embedded ``cloud`` whose two compute hosts are the pair of this benchmark - each host's
    libvirt driver with ``connection_uri`` = its daemon's :attr:`LabLibvirtd.uri`,
    ``instances_path`` = its :attr:`LabLibvirtd.instances_path`, ``virt_type`` =
    ``STACKCORE_TEST_VIRT_TYPE``, and the address the migration stream and the NBD copy go
    to = its :attr:`LabLibvirtd.address` - booted with the same idle guest (memory, disk) as
    the raw side. Returns (total seconds, downtime ms), the downtime read as the raw side's:
    the completed job of the domain on the destination daemon (``virsh domjobinfo
    --completed``, or ``dom.jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)["downtime"]``).
    """
    raise NotImplementedError(
        "the framework side of live migration is not written yet: run with --raw-only")


def boot(host: lab.LabLibvirtd, memory_mib: int, disk_mib: int, virt_type: str) -> str:
    """Define and start the idle guest on ``host``; its domain name."""
    name = f"lm-bench-{uuid.uuid4().hex[:8]}"
    disk = host.instances_path / f"{name}.qcow2"
    lab.create_disk(disk, disk_mib)
    conn = host.connect()
    try:
        dom = conn.defineXML(lab.guest_xml(name, disk, virt_type, memory_mib=memory_mib))
        dom.create()
    except libvirt.libvirtError as err:
        raise RuntimeError(f"{name} did not start on {host.name}: {err}\n"
                           f"{lab.qemu_log_tail(host, name)}") from err
    finally:
        conn.close()
    return name


def running_on(host: lab.LabLibvirtd, name: str) -> None:
    conn = host.connect()
    try:
        state = conn.lookupByName(name).state()
    finally:
        conn.close()
    if state[0] != libvirt.VIR_DOMAIN_RUNNING:
        raise RuntimeError(f"{name} on {host.name} is in state {state} after the migration")


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6,
                        help="timed moves, alternately a -> b and b -> a")
    parser.add_argument("--warm-up", type=int, default=1, help="untimed moves first")
    parser.add_argument("--memory-mib", type=int, default=256)
    parser.add_argument("--disk-mib", type=int, default=64)
    parser.add_argument("--raw-only", action="store_true",
                        help="the raw side alone (the framework side is not written yet)")
    parser.add_argument("--smoke", action="store_true", help="2 rounds, no warm-up")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.warm_up = 2, 0
    if not args.raw_only:
        parser.error("the framework side (framework_migrate) is not written yet: run with "
                     "--raw-only")
    virt_type = env("STACKCORE_TEST_VIRT_TYPE")
    bridge, cidr = env("STACKCORE_TEST_LAB_BRIDGE"), env("STACKCORE_TEST_LAB_CIDR")
    work = Path(tempfile.mkdtemp(prefix="live-migration-bench-", dir=os.environ.get("TMPDIR")))
    raw = Figures()
    try:
        with lab.lab_pair(work / "pair", bridge, cidr) as (a, b):
            name = boot(a, args.memory_mib, args.disk_mib, virt_type)
            where = [a, b]
            for round_ in range(args.warm_up + args.rounds):
                source, dest = where
                total, migrate, downtime = raw_migrate(source, dest, name, work)
                running_on(dest, name)
                where.reverse()
                if round_ < args.warm_up:
                    continue
                raw.total_s.append(total)
                raw.migrate_s.append(migrate)
                raw.downtime_ms.append(downtime)
                print(f"  raw {source.name} -> {dest.name}: total {total * 1000:.0f} ms "
                      f"(virsh migrate {migrate * 1000:.0f} ms), downtime {downtime:.0f} ms",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = raw.medians()
    what = (f"idle {args.memory_mib} MiB guest, {args.disk_mib} MiB local qcow2 copied, "
            f"median of {args.rounds}")
    print(f"live migration ({what}): raw qemu-img create + virsh migrate "
          f"{medians['total_ms']:.0f} ms (virsh migrate alone {medians['migrate_ms']:.0f} ms), "
          f"downtime {medians['downtime_ms']:.0f} ms; framework: not measured (--raw-only)",
          flush=True)
    return {
        "memory_mib": args.memory_mib, "disk_mib": args.disk_mib, "rounds": args.rounds,
        "raw": medians,
        "rounds_ms": {"raw_total": [round(x * 1000) for x in raw.total_s],
                      "raw_migrate": [round(x * 1000) for x in raw.migrate_s],
                      "raw_downtime": raw.downtime_ms},
        "summary": {
            "text": f"raw virsh live block migration {medians['total_ms']:.0f} ms, downtime "
                    f"{medians['downtime_ms']:.0f} ms ({what}); framework not measured",
            "goal": "framework against raw: not judged until the framework side exists",
            "met": None,
        },
    }


if __name__ == "__main__":
    main(sys.argv[1:])
