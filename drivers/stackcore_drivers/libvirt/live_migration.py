"""Live migration between two libvirtd hosts: the destination's domain XML, and the job.

How it runs (as Nova's libvirt driver, without peer-to-peer): the *source's* compute service
drives the migration, talking to both daemons (the destination's through the URI it gave in
its ``migrate_data``); the guest's memory - and, for a block migration, its local root disk,
through an NBD server the destination's QEMU opens - goes straight from QEMU to QEMU over
TCP to the destination's ``live_migration_inbound_addr``. The destination defines the
domain from the XML the source hands over (``VIR_MIGRATE_PARAM_DEST_XML``): the two hosts'
instance directories may differ (each host its own ``instances_path``), so every path under
the source's directory is rewritten to the destination's, the volumes' disks are the
destination's own (its connection of each volume), and the ownership record names the
destination host - its ``list_instances`` lists it from then on.

A block migration copies only the top of the root disk's chain
(``VIR_MIGRATE_NON_SHARED_INC``): the destination made an empty overlay on its own copy of
the same base image (its image cache), as Nova does, so the image is never sent. Only
``vda`` is copied (``VIR_MIGRATE_PARAM_MIGRATE_DISKS``): volumes are shared storage.

The job runs in a thread; the calling thread watches it (:func:`run`): it sets the
allowed downtime once the job exists, aborts it when asked (``live_migration_abort``) or
when it runs past its completion timeout. libvirt rolls a failed or aborted migration back
itself: the guest keeps running on the source.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from stackcore import exception
from stackcore_drivers.libvirt import domain_xml

#: how often the watching thread looks at the job (seconds)
_POLL = 0.1


def rewrite_paths(element: ET.Element, source_dir: str, dest_dir: str) -> int:
    """Point every ``file``/``path`` attribute under ``source_dir`` (disk sources, the serial
    console's log) at the same name under ``dest_dir``; how many were rewritten."""
    prefix = source_dir.rstrip("/") + "/"
    count = 0
    for node in element.iter():
        for attr in ("file", "path"):
            value = node.get(attr)
            if value is not None and value.startswith(prefix):
                node.set(attr, dest_dir.rstrip("/") + "/" + value[len(prefix):])
                count += 1
    return count


def dest_document(source_xml: str, *, source_dir: str, dest_dir: str, dest_host: str,
                  volumes: Mapping[str, str]) -> str:
    """The destination's domain XML: the source's (``VIR_DOMAIN_XML_MIGRATABLE``) with its
    paths moved to ``dest_dir``, the disks of ``volumes`` (target dev -> the destination's
    ``<disk>`` XML) replaced, and ``dest_host`` in the ownership record."""
    doc = domain_xml.parse(source_xml)
    rewrite_paths(doc, source_dir, dest_dir)
    devices = doc.find("devices")
    for dev, disk_xml in volumes.items():
        old = domain_xml.find_disk(doc, dev)
        if old is None or devices is None:
            raise exception.DriverError(
                f"the domain has no disk {dev} for the destination's volume to replace")
        index = list(devices).index(old)
        devices.remove(old)
        devices.insert(index, domain_xml.parse(disk_xml))
    if not domain_xml.set_owner_host(doc, dest_host):
        raise exception.DriverError("the domain has no stackcore ownership record to move")
    return domain_xml.to_string(doc)


@dataclasses.dataclass
class Job:
    """One live migration in progress on the source (``abort`` is set to cancel it)."""

    instance_uuid: str
    abort: threading.Event = dataclasses.field(default_factory=threading.Event)


def run(dom: Any, dconn: Any, params: Mapping[str, Any], flags: int, job: Job, *,
        downtime_ms: int, timeout_s: float) -> tuple[Any, dict[str, Any]]:
    """Run ``dom.migrate3(dconn, params, flags)`` in a thread and watch it: the allowed
    downtime set once the job runs, aborted on ``job.abort`` or after ``timeout_s``
    (0: never). Returns the destination's domain and the figures of the job
    (``total_ms``, ``downtime_ms``, ``memory_bytes``, ``disk_bytes`` as libvirt reports
    them). Raises DriverError naming why when it failed or was aborted."""
    import libvirt

    outcome: dict[str, Any] = {}

    def migrate() -> None:
        try:
            outcome["domain"] = dom.migrate3(dconn, dict(params), flags)
        except libvirt.libvirtError as err:
            outcome["error"] = err

    started = time.monotonic()
    worker = threading.Thread(target=migrate, name=f"live-migration-{job.instance_uuid}",
                              daemon=True)
    worker.start()
    downtime_set = False
    why_aborted = ""
    while worker.is_alive():
        worker.join(_POLL)
        if not worker.is_alive():
            break
        if not downtime_set:
            try:
                if dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:
                    dom.migrateSetMaxDowntime(downtime_ms, 0)
                    downtime_set = True
            except libvirt.libvirtError:
                pass  # the job may not have started, or just ended: looked at again
        if not why_aborted:
            if job.abort.is_set():
                why_aborted = "aborted on request"
            elif timeout_s and time.monotonic() - started > timeout_s:
                why_aborted = (f"aborted after {timeout_s:.0f} s ([libvirt] "
                               "live_migration_completion_timeout)")
            if why_aborted:
                try:
                    dom.abortJob()
                except libvirt.libvirtError as err:
                    why_aborted += f" (abortJob: {err})"
    total_ms = int((time.monotonic() - started) * 1000)
    if "error" in outcome:
        raise exception.DriverError(
            f"live migration of instance {job.instance_uuid} failed"
            + (f", {why_aborted}" if why_aborted else "") + f": {outcome['error']}")
    new = outcome.get("domain")
    if new is None:
        raise exception.DriverError(
            f"live migration of instance {job.instance_uuid} returned no domain")
    figures: dict[str, Any] = {"total_ms": total_ms}
    try:
        stats = new.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        stats = {}
    for key, name in (("downtime", "downtime_ms"), ("memory_processed", "memory_bytes"),
                      ("disk_processed", "disk_bytes"), ("time_elapsed", "job_ms")):
        if key in stats:
            figures[name] = int(stats[key])
    return new, figures
