"""Live migration of a running server between two compute hosts, against ``virsh migrate``.

The two hosts are the lab of tests/functional/compute/libvirt_pair.py: two libvirtds on this
machine, each in its own mount and network namespace on the lab bridge (``sc-lab0``), with
its own address, host UUID and instances directory. An idle guest (``--memory-mib`` MiB,
1 vCPU, a ``--disk-mib`` MiB local qcow2 disk: no OS, it idles in its firmware) is moved from
one host to the other and back, ``--rounds`` moves in all after ``--warm-up`` untimed ones,
and the median of each figure is reported:

* **raw**: what an operator runs by hand for a live block migration between two hosts with
  local disks: ``qemu-img create`` of the destination disk (libvirt copies into an existing
  file only), then ``virsh migrate --live --copy-storage-inc --persistent --undefinesource
  --xml <destination XML> --listen-address <dest> <name> <dest URI> tcp://<dest>``
  (client-managed: virsh drives both daemons). The guest is a twin of the framework's
  (:meth:`FrameworkSide.twin`: the same definition - q35, its devices, its console log -
  under another name, its disk an overlay of the same size on the same image, the
  destination's an overlay on it too): the domain's shape decides much of a move's time
  (with the minimal guest of ``--raw-only``, copied whole with ``--copy-storage-all``, a
  move took 0.8 s less). Both sides' moves are bimodal here (about 2.0 s or 2.9 s, the
  same for virsh: QEMU's start and stop), so medians of 10. Total: wall time of those two commands
  (``virsh migrate`` alone reported too); downtime: ``Total downtime`` of
  ``virsh domjobinfo --completed`` on the destination (the pause between the last memory
  pass on the source and the resume on the destination, as QEMU measured it);
* **framework** (:class:`FrameworkSide`): ``cloud.compute.live_migrate_server`` (it
  returns once the server is ACTIVE on the destination with no task: the source cleaned
  up, the claims moved) on a deployment of the core whose two compute hosts' libvirt
  drivers use the two daemons (tests/functional/compute/pair_cloud.py: API and compute
  services in one process each, over RabbitMQ); the same idle guest, its root disk the
  qcow2 overlay a compute host makes on a ``--disk-mib`` MiB image (the overlay is
  copied). Downtime as libvirt reports it for the completed job on the destination (the
  driver records it with the migration). Judged against the raw figures of the same run,
  the two sides alternating round by round.

    . /var/lib/stackcore-backends/env.sh
    .venv/bin/python benchmarks/live_migration.py [--rounds 6] [--memory-mib 256] [--raw-only]
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
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import libvirt  # noqa: E402

from stackcore.compute import models  # noqa: E402
from tests.functional.compute import libvirt_pair as lab  # noqa: E402
from tests.functional.compute.pair_cloud import HOSTS, PairDeployment  # noqa: E402


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
                work: Path, base: Path | None = None) -> tuple[float, float, float]:
    """Move the running domain ``name`` from ``source`` to ``dest`` by hand: the destination
    disk created, then ``virsh migrate``. (total s, ``virsh migrate`` s, downtime ms).
    ``base``: the disk is an overlay on that image, which both hosts have: the destination
    disk is an overlay on it too and only the top is copied (``--copy-storage-inc``, what
    the framework does), else a whole copy into an empty qcow2 (``--copy-storage-all``)."""
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
    if base is not None:
        command[command.index("--copy-storage-all")] = "--copy-storage-inc"
    start = time.perf_counter()
    if base is None:
        lab.precreate_disks(source_xml, new_paths)
    else:
        for dev, path in lab.disk_paths(source_xml).items():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(base), new_paths[dev], str(lab.virtual_size(path))],
                           check=True, capture_output=True)
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


class FrameworkSide:
    """The framework's side: a :class:`PairDeployment` (API + one compute process per lab
    host, over a RabbitMQ virtual host of its own and an SQLite database) on the same two
    daemons, with the same idle guest (``--memory-mib``; its root disk a qcow2 overlay on a
    ``--disk-mib`` MiB image, what a compute host makes), moved with
    ``cloud.compute.live_migrate_server`` (block migration: the overlay is copied)."""

    def __init__(self, work: Path, pair: tuple[lab.LabLibvirtd, lab.LabLibvirtd],
                 memory_mib: int, disk_mib: int, virt_type: str) -> None:
        base = env("STACKCORE_TEST_RABBIT_URL")
        self.vhost = f"stackcore-bench-{uuid.uuid4().hex[:12]}"
        user = urllib.parse.urlsplit(base).username or "guest"
        for command in (["add_vhost", self.vhost],
                        ["set_permissions", "-p", self.vhost, user, ".*", ".*", ".*"]):
            subprocess.run(["rabbitmqctl", "-q", *command], check=True, capture_output=True,
                           timeout=120)
        self.deployment = PairDeployment(
            work / "framework", pair, base.rstrip("/") + "/" + self.vhost,
            f"sqlite:///{work / 'framework.sqlite'}", virt_type)
        api = self.deployment.api.compute
        image = work / "framework-image.qcow2"
        lab.create_disk(image, disk_mib)
        self.image = image
        api.create_flavor("bench", vcpus=1, ram_mb=memory_mib, disk_gb=1)
        api.register_image("bench", str(image), disk_format="qcow2",
                           properties={"architecture": "x86_64"}, visibility="public")
        server = api.create_server("lm-bench", "bench", "bench")
        if server.status != "ACTIVE":
            raise RuntimeError(f"the framework's guest did not boot: {server.fault}")
        self.server_id = server.id
        #: the libvirt driver's own time of each move (its virDomainMigrate3 and the watch)
        self.driver_s: list[float] = []

    def twin(self, host: lab.LabLibvirtd) -> str:
        """Define and start on ``host`` (where the framework's guest runs) a twin of that
        guest for the raw side: its definition (machine, devices, console log) with another
        name and uuid, its disk an overlay of the same size on the same image - so that both
        sides move the same guest. Its domain name."""
        from stackcore_drivers.libvirt import domain_xml

        conn = host.connect()
        try:
            dom = conn.lookupByName(f"instance-{self.server_id}")
            doc = domain_xml.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            name = f"lm-twin-{uuid.uuid4().hex[:8]}"
            doc.find("name").text = name  # type: ignore[union-attr]
            doc.find("uuid").text = str(uuid.uuid4())  # type: ignore[union-attr]
            for metadata in doc.findall("metadata"):
                doc.remove(metadata)
            overlay = host.instances_path / f"{name}.qcow2"
            framework_disk = lab.disk_paths(domain_xml.to_string(doc))["vda"]
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(self.image), str(overlay),
                            str(lab.virtual_size(framework_disk))],
                           check=True, capture_output=True)
            instance_dir = str(Path(framework_disk).parent)
            for node in doc.iter():
                for attr in ("file", "path"):
                    value = node.get(attr)
                    if value == framework_disk:
                        node.set(attr, str(overlay))
                    elif value and value.startswith(instance_dir + "/"):
                        node.set(attr, str(host.instances_path / f"{name}.{Path(value).name}"))
            conn.defineXML(domain_xml.to_string(doc)).create()
        finally:
            conn.close()
        return name

    def host(self) -> str:
        return str(self.deployment.api.compute.get_server(self.server_id).host)

    def migrate(self) -> tuple[float, float, str, str]:
        """Move the guest to the other host: (total s, downtime ms, from, to)."""
        api = self.deployment.api.compute
        source = api.get_server(self.server_id).host
        dest = next(h for h in HOSTS if h != source)
        start = time.perf_counter()
        moved = api.live_migrate_server(self.server_id, host=dest, block_migration=True)
        total = time.perf_counter() - start
        if (moved.status, moved.host) != ("ACTIVE", dest):
            raise RuntimeError(f"framework move to {dest} ended {moved.status} on "
                               f"{moved.host}: {moved.fault}")
        latest = api.list_server_migrations(self.server_id)[-1]
        with self.deployment.api.db.read() as session:
            figures = dict(session.get(models.Migration, latest.id).disk_info["figures"])
        self.driver_s.append(float(figures["total_ms"]) / 1000)
        return total, float(figures["downtime_ms"]), source, dest

    def close(self) -> None:
        try:
            self.deployment.api.compute.delete_server(self.server_id)
        finally:
            self.deployment.close()
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost],
                           capture_output=True, timeout=120, check=False)


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
    parser.add_argument("--rounds", type=int, default=10,
                        help="timed moves, alternately a -> b and b -> a")
    parser.add_argument("--warm-up", type=int, default=1, help="untimed moves first")
    parser.add_argument("--memory-mib", type=int, default=256)
    parser.add_argument("--disk-mib", type=int, default=64)
    parser.add_argument("--raw-only", action="store_true", help="the raw side alone")
    parser.add_argument("--smoke", action="store_true", help="2 rounds, no warm-up")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.warm_up = 2, 0
    virt_type = env("STACKCORE_TEST_VIRT_TYPE")
    bridge, cidr = env("STACKCORE_TEST_LAB_BRIDGE"), env("STACKCORE_TEST_LAB_CIDR")
    work = Path(tempfile.mkdtemp(prefix="live-migration-bench-", dir=os.environ.get("TMPDIR")))
    raw, framework = Figures(), Figures()
    try:
        with lab.lab_pair(work / "pair", bridge, cidr) as (a, b):
            side = None if args.raw_only else FrameworkSide(
                work, (a, b), args.memory_mib, args.disk_mib, virt_type)
            if side is None:
                name, base = boot(a, args.memory_mib, args.disk_mib, virt_type), None
            else:  # the same guest on both sides: a twin of the framework's
                host = a if side.host() == HOSTS[0] else b
                name, base = side.twin(host), side.image
                if host is b:
                    a, b = b, a
            try:
                where = [a, b]
                # the two sides alternate, round by round: a busy moment hits both
                for round_ in range(args.warm_up + args.rounds):
                    source, dest = where
                    total, migrate, downtime = raw_migrate(source, dest, name, work, base)
                    running_on(dest, name)
                    where.reverse()
                    timed = round_ >= args.warm_up
                    if timed:
                        raw.total_s.append(total)
                        raw.migrate_s.append(migrate)
                        raw.downtime_ms.append(downtime)
                        print(f"  raw {source.name} -> {dest.name}: total {total * 1000:.0f} "
                              f"ms (virsh migrate {migrate * 1000:.0f} ms), downtime "
                              f"{downtime:.0f} ms", flush=True)
                    if side is None:
                        continue
                    f_total, f_downtime, f_from, f_to = side.migrate()
                    if timed:
                        framework.total_s.append(f_total)
                        framework.downtime_ms.append(f_downtime)
                        print(f"  framework {f_from} -> {f_to}: total "
                              f"{f_total * 1000:.0f} ms, downtime {f_downtime:.0f} ms",
                              flush=True)
            finally:
                if side is not None:
                    side.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = raw.medians()
    what = (f"idle {args.memory_mib} MiB guest, {args.disk_mib} MiB local qcow2 copied, "
            f"median of {args.rounds}")
    result: dict[str, Any] = {
        "memory_mib": args.memory_mib, "disk_mib": args.disk_mib, "rounds": args.rounds,
        "raw": medians,
        "rounds_ms": {"raw_total": [round(x * 1000) for x in raw.total_s],
                      "raw_migrate": [round(x * 1000) for x in raw.migrate_s],
                      "raw_downtime": raw.downtime_ms}}
    goal = "framework total < 1.10 x raw total (< 10 % overhead), same run"
    if args.raw_only:
        text = (f"raw virsh live block migration {medians['total_ms']:.0f} ms, downtime "
                f"{medians['downtime_ms']:.0f} ms ({what}); framework not measured "
                "(--raw-only)")
        result["summary"] = {"text": text, "goal": goal, "met": None}
    else:
        fw = framework.medians()
        ratio = fw["total_ms"] / medians["total_ms"]
        assert side is not None
        timed_driver = side.driver_s[args.warm_up:]
        # what the framework adds around the hypervisor's own migration (API, scheduler,
        # RPC, the destination's preparation, the post steps, the wait): per move
        overhead = [f - d for f, d in zip(framework.total_s, timed_driver, strict=True)]
        fw["driver_ms"] = statistics.median(timed_driver) * 1000
        fw["overhead_ms"] = statistics.median(overhead) * 1000
        result["framework"] = fw
        result["rounds_ms"].update(
            framework_total=[round(x * 1000) for x in framework.total_s],
            framework_downtime=framework.downtime_ms)
        text = (f"framework {fw['total_ms']:.0f} ms (downtime {fw['downtime_ms']:.0f} ms; "
                f"its driver's migrate {fw['driver_ms']:.0f} ms, the rest "
                f"{fw['overhead_ms']:.0f} ms) / raw {medians['total_ms']:.0f} ms (downtime "
                f"{medians['downtime_ms']:.0f} ms) = {ratio:.2f}x ({what})")
        result["summary"] = {"text": text, "goal": goal, "met": ratio < 1.10}
    print(f"live migration: {result['summary']['text']}", flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
