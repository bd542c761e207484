"""Domain XML, built and read with :mod:`xml.etree.ElementTree`.

Nothing here joins strings into XML: user data (display names, metadata) only ever becomes
element text or attribute values, so the library escapes ``<>&'"``. Characters XML 1.0 cannot
carry at all (most control characters) are replaced, because escaping cannot save them.

A domain the driver made is recognised by its name (``instance-<uuid>``) *and* by the
``<stackcore:instance>`` element in its ``<metadata>``, which records the instance uuid and the
compute host it belongs to; a domain lacking either is never listed, changed or removed.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
import xml.etree.ElementTree as ET

from stackcore.compute import Instance

NS = "https://stackcore.dev/xmlns/libvirt/instance/1.0"
NAME_PREFIX = "instance-"
ET.register_namespace("stackcore", NS)


@functools.cache
def _not_xml_char() -> re.Pattern[str]:
    """Characters XML 1.0 does not allow (https://www.w3.org/TR/xml/#charsets): they are
    replaced. Compiled on first use (the character class takes ~6 ms to compile)."""
    return re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can hold (the library still escapes ``<>&'"`` itself)."""
    return _not_xml_char().sub("\ufffd", str(value))


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def domain_name(instance_uuid: str) -> str:
    """The libvirt domain name of an instance: derived from its uuid, never its display name."""
    return f"{NAME_PREFIX}{instance_uuid}"


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Append ``<tag attrs>text</tag>`` to ``parent``; attribute values are escaped by ET."""
    child = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        child.text = xml_text(text)
    return child


def to_string(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


def parse(document: str) -> ET.Element:
    return ET.fromstring(document)  # noqa: S314 - libvirt's own output, not untrusted input


@dataclasses.dataclass(frozen=True)
class DomainSettings:
    """How domains look on this connection (from the driver's options and the backend)."""

    domain_type: str  # kvm | qemu | test
    arch: str | None = None
    machine_type: str | None = None
    pcie_root_ports: int = 0
    cpu_mode: str | None = None  # host-model | host-passthrough | None (QEMU default)
    virtio_scsi: bool = False


def metadata_element(instance: Instance, host: str,
                     boot_volume: str | None = None) -> ET.Element:
    """``<stackcore:instance>``: who this domain belongs to and what it was made from.
    ``boot_volume`` (the volume id, ``""`` if unknown) records that the root disk is a
    volume: ``<stackcore:boot-volume id=.../>``."""
    root = ET.Element(_q("instance"))
    sub(root, _q("uuid"), instance.uuid)
    sub(root, _q("host"), host)
    sub(root, _q("name"), instance.name)
    flavor = instance.flavor
    sub(root, _q("flavor"), name=flavor.name, vcpus=str(flavor.vcpus),
        ram_mb=str(flavor.ram_mb), disk_gb=str(flavor.disk_gb))
    sub(root, _q("image"), id=instance.image.id, name=instance.image.name,
        disk_format=instance.image.disk_format)
    if boot_volume is not None:
        sub(root, _q("boot-volume"), id=boot_volume)
    for key, value in sorted(instance.metadata.items()):
        sub(root, _q("meta"), value, key=key)
    sub(root, _q("created"), datetime.datetime.now(datetime.UTC).isoformat())
    return root


def build_domain(
    instance: Instance,
    host: str,
    settings: DomainSettings,
    *,
    root_disk: ET.Element | None,
    console_log: str | None,
    devices: list[ET.Element],
    boot_volume: str | None = None,
) -> ET.Element:
    """The full ``<domain>`` of ``instance``: flavor sizes, metadata, root disk, console and
    any extra device elements (volumes, interfaces). ``boot_volume``: the root disk is that
    volume (its id; see :func:`boot_volume`)."""
    domain = ET.Element("domain", type=settings.domain_type)
    sub(domain, "name", domain_name(instance.uuid))
    sub(domain, "uuid", instance.uuid)
    # libvirt refuses line breaks in a title; the full name is kept in the metadata.
    sub(domain, "title", " ".join(instance.name.splitlines()) or instance.uuid)
    metadata = sub(domain, "metadata")
    metadata.append(metadata_element(instance, host, boot_volume))
    sub(domain, "memory", str(instance.flavor.ram_mb), unit="MiB")
    sub(domain, "vcpu", str(instance.flavor.vcpus))

    os_element = sub(domain, "os")
    type_attrs = {}
    if settings.arch:
        type_attrs["arch"] = settings.arch
    if settings.machine_type:
        type_attrs["machine"] = settings.machine_type
    sub(os_element, "type", "hvm", **type_attrs)
    sub(os_element, "boot", dev="hd")

    if settings.domain_type != "test":
        features = sub(domain, "features")
        sub(features, "acpi")
        sub(features, "apic")
        if settings.cpu_mode:
            sub(domain, "cpu", mode=settings.cpu_mode)
        sub(domain, "clock", offset="utc")
    sub(domain, "on_poweroff", "destroy")
    sub(domain, "on_reboot", "restart")
    sub(domain, "on_crash", "destroy")

    dev = sub(domain, "devices")
    if root_disk is not None:
        dev.append(root_disk)
    if settings.machine_type and settings.machine_type.startswith("q35"):
        # Free root ports are what live-attached virtio disks and NICs plug into; libvirt wants
        # the root complex (index 0) stated once root ports are.
        sub(dev, "controller", type="pci", index="0", model="pcie-root")
        for _ in range(settings.pcie_root_ports):
            sub(dev, "controller", type="pci", model="pcie-root-port")
    if settings.virtio_scsi:
        # SCSI disks (/dev/sdX) attach and detach without guest cooperation or PCI slots.
        sub(dev, "controller", type="scsi", index="0", model="virtio-scsi")
    if console_log is not None:
        serial = sub(dev, "serial", type="pty")
        sub(serial, "log", file=console_log, append="off")
        sub(serial, "target", port="0")
        console = sub(dev, "console", type="pty")
        sub(console, "target", type="serial", port="0")
    for device in devices:
        dev.append(device)
    return domain


def file_disk(path: str, disk_format: str, target_dev: str, bus: str) -> ET.Element:
    disk = ET.Element("disk", type="file", device="disk")
    sub(disk, "driver", name="qemu", type=disk_format)
    sub(disk, "source", file=path)
    sub(disk, "target", dev=target_dev, bus=bus)
    return disk


@dataclasses.dataclass(frozen=True)
class Ownership:
    """What a domain's ``<stackcore:instance>`` says about it."""

    uuid: str
    host: str


def ownership(domain: ET.Element) -> Ownership | None:
    """The stackcore owner record of a parsed domain, or None if stackcore did not make it."""
    name = domain.findtext("name") or ""
    record = domain.find(f"metadata/{_q('instance')}")
    if record is None or not name.startswith(NAME_PREFIX):
        return None
    uuid = record.findtext(_q("uuid")) or ""
    if name != domain_name(uuid):
        return None
    return Ownership(uuid=uuid, host=record.findtext(_q("host")) or "")


def set_owner_host(domain: ET.Element, host: str) -> bool:
    """Record ``host`` as the compute host a parsed domain belongs to (a live migration's
    destination); False if the domain has no stackcore ownership record."""
    record = domain.find(f"metadata/{_q('instance')}/{_q('host')}")
    if record is None:
        return False
    record.text = xml_text(host)
    return True


def boot_volume(domain: ET.Element) -> str | None:
    """The id of the volume a parsed domain boots from (``""`` if it was not given), or None
    when its root disk is the driver's own (made from an image)."""
    record = domain.find(f"metadata/{_q('instance')}/{_q('boot-volume')}")
    return None if record is None else record.get("id", "")


def find_disk(domain: ET.Element, target_dev: str) -> ET.Element | None:
    for disk in domain.findall("devices/disk"):
        target = disk.find("target")
        if target is not None and target.get("dev") == target_dev:
            return disk
    return None


def find_interface(domain: ET.Element, mac: str) -> ET.Element | None:
    for interface in domain.findall("devices/interface"):
        address = interface.find("mac")
        if address is not None and (address.get("address") or "").lower() == mac.lower():
            return interface
    return None


def root_disk_source(domain: ET.Element) -> str | None:
    """The file behind the root disk (``vda``), if it is a file."""
    disk = find_disk(domain, "vda")
    source = disk.find("source") if disk is not None else None
    return source.get("file") if source is not None else None
