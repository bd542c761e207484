"""Root disks as Ceph RBD images (``[libvirt] images_type = rbd``), as Nova's rbd image backend.

An instance's root disk is the RBD image ``<instance uuid>_disk`` in ``images_rbd_pool``:

* a copy-on-write **clone** of the image store's snapshot when the server's image lives in the
  ``rbd`` image store of the *same* cluster (location ``rbd://<fsid>/<pool>/image-<id>/snap``,
  fsid equal to this cluster's) and is ``raw`` - a clone of a qcow2 image would hand the guest
  qcow2 bytes as a raw disk, so qcow2 images are imported instead (as Nova does);
* else an **import**: the RBD image is created here (exclusively: an existing one is never
  overwritten), then ``qemu-img convert -n`` writes the host's image-cache copy into it as raw.
  The cached file is inspected first (declared format, no backing or data file), as before
  every qemu-img use on an image;
* then grown to the flavor's root size (never shrunk below the image).

Any failure while making the disk removes it. QEMU reaches the image itself (librbd): the
domain's disk is ``<disk type='network'><source protocol='rbd' name='pool/<uuid>_disk'>`` with
the cluster's monitors as ``<host>`` elements (read from the monitor map, not from a config
file QEMU would have to share) and, with ``rbd_user``/``rbd_secret_uuid``, cephx through a
libvirt secret the operator defined (Nova's convention: the driver never holds the key).

qemu-img reaches RBD through a ``json:`` pseudo-filename built with :func:`json.dumps` and
passed as one argument (never a shell, never a joined ``rbd:pool/img:conf=...`` string whose
``:`` and ``@`` would need escaping).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
import uuid as uuid_lib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from stackcore import exception, image
from stackcore_drivers import ceph
from stackcore_drivers.libvirt import images
from stackcore_drivers.libvirt.domain_xml import sub

LOG = logging.getLogger(__name__)

#: The suffix of a root disk's RBD image name (Nova's ``<uuid>_disk``).
DISK_SUFFIX = "_disk"
LAYERING = 1  # rbd.RBD_FEATURE_LAYERING, spelt out so that loading needs no bindings
#: Ceph pool names the driver accepts: what ``ceph osd pool create`` users write in practice,
#: and nothing that means something in an RBD spec (``/``, ``@``, ``:``).
_POOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_LOCATION = re.compile(r"^rbd://(?P<fsid>[^/]+)/(?P<pool>[^/]+)/(?P<name>[^/]+)/(?P<snap>[^/]+)\Z")


def disk_name(instance_uuid: str) -> str:
    """The RBD image of an instance's root disk (derived from its uuid only)."""
    return f"{uuid_lib.UUID(instance_uuid)}{DISK_SUFFIX}"


@dataclasses.dataclass(frozen=True)
class Clone:
    """Where a root disk can clone from: ``pool/name@snap`` of this cluster."""

    pool: str
    name: str
    snap: str


def clone_source(location: str, disk_format: str, fsid: str) -> Clone | None:
    """The snapshot to clone a root disk from, or None (import instead) when the image is not
    raw, not an RBD location, or in another cluster."""
    match = _LOCATION.match(location or "")
    if match is None or disk_format != "raw" or match.group("fsid") != fsid:
        return None
    return Clone(match.group("pool"), match.group("name"), match.group("snap"))


@dataclasses.dataclass(frozen=True)
class RbdDiskSpec:
    """What a domain's ``<disk>`` needs to reach an RBD image."""

    pool: str
    name: str
    hosts: tuple[tuple[str, str], ...]  # monitors: (address, port)
    user: str | None = None
    secret_uuid: str | None = None

    def element(self, target_dev: str = "vda", bus: str = "virtio") -> ET.Element:
        disk = ET.Element("disk", type="network", device="disk")
        # writeback: librbd's own cache, flushed when the guest flushes (Nova's advice for rbd)
        sub(disk, "driver", name="qemu", type="raw", cache="writeback")
        source = sub(disk, "source", protocol="rbd", name=f"{self.pool}/{self.name}")
        for host, port in self.hosts:
            sub(source, "host", name=host, port=port)
        if self.user and self.secret_uuid:
            auth = sub(source, "auth", username=self.user)
            sub(auth, "secret", type="ceph", uuid=self.secret_uuid)
        sub(disk, "target", dev=target_dev, bus=bus)
        return disk


def rbd_source(domain_disk: ET.Element | None) -> tuple[str, str] | None:
    """``(pool, image)`` of a ``<disk>`` on RBD, else None."""
    if domain_disk is None or domain_disk.get("type") != "network":
        return None
    source = domain_disk.find("source")
    if source is None or source.get("protocol") != "rbd":
        return None
    pool, _, name = (source.get("name") or "").partition("/")
    return (pool, name) if pool and name else None


def mon_addresses(monmap: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Monitor ``(host, port)`` pairs from ``ceph mon dump -f json``: the v1 (legacy protocol)
    address of each, which every QEMU's librbd speaks, else the plain ``addr``."""
    found = []
    for mon in monmap.get("mons", []):
        addrs = (mon.get("public_addrs") or {}).get("addrvec") or []
        chosen = next((a["addr"] for a in addrs if a.get("type") == "v1"), None)
        addr = str(chosen or mon.get("addr") or "").split("/", 1)[0]
        host, sep, port = addr.rpartition(":")
        if sep and host:
            found.append((host.strip("[]"), port))
    return tuple(found)


class RbdDisks:
    """Root disks in one pool of one cluster (built from the ``[libvirt] images_rbd_*``
    options; :meth:`connect` at ``init_host``)."""

    def __init__(self, pool: str, ceph_conf: str, user: str | None, secret_uuid: str | None,
                 connect_timeout: int) -> None:
        if not _POOL.match(pool or ""):
            raise exception.ConfigError(
                f"[libvirt] images_rbd_pool = {pool!r}: not a Ceph pool name (letters, digits, "
                "'_', '.', '-')")
        if secret_uuid:
            try:
                uuid_lib.UUID(secret_uuid)
            except ValueError:
                raise exception.ConfigError(
                    f"[libvirt] rbd_secret_uuid = {secret_uuid!r}: not a uuid") from None
            if not user:
                raise exception.ConfigError(
                    "[libvirt] rbd_secret_uuid is set but rbd_user is not: cephx needs both")
        self.pool = pool
        self.ceph_conf = ceph_conf
        self.user = user or None
        self.secret_uuid = secret_uuid or None
        self.connect_timeout = connect_timeout
        self.fsid = ""
        self.hosts: tuple[tuple[str, str], ...] = ()
        self._client: Any = None
        self._lock = threading.Lock()

    # --- connection -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the cluster and the pool, read the fsid and the monitors. ConfigError naming
        the option at fault: start-up fails loudly, not the first boot."""
        rados, _ = ceph.bindings("[libvirt] images_type = rbd")
        with self._lock:
            if self._client is not None:
                return
            try:
                client = ceph.connect(rados, user=self.user, conffile=self.ceph_conf,
                                      timeout=self.connect_timeout
                                      if self.connect_timeout > 0 else None)
            except rados.Error as err:
                raise exception.ConfigError(
                    f"[libvirt] images_rbd_ceph_conf = {self.ceph_conf!r} (rbd_user = "
                    f"{self.user!r}): cannot reach the Ceph cluster: {type(err).__name__}: "
                    f"{err}") from None
            try:
                if not client.pool_exists(self.pool):
                    raise exception.ConfigError(
                        f"[libvirt] images_rbd_pool = {self.pool!r}: the Ceph cluster "
                        f"{client.get_fsid()} has no such pool")
                ret, out, err_text = client.mon_command(
                    json.dumps({"prefix": "mon dump", "format": "json"}), b"")
                if ret != 0:
                    raise exception.ConfigError(
                        f"[libvirt] images_rbd_ceph_conf = {self.ceph_conf!r}: reading the "
                        f"monitor map failed ({ret}): {err_text}")
                hosts = mon_addresses(json.loads(out))
                if not hosts:
                    raise exception.ConfigError(
                        f"[libvirt] images_rbd_ceph_conf = {self.ceph_conf!r}: the monitor "
                        "map lists no monitor address")
                self.fsid = str(client.get_fsid())
                self.hosts = hosts
            except BaseException:
                with contextlib.suppress(Exception):
                    client.shutdown()
                raise
            self._client = client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.shutdown()

    @contextlib.contextmanager
    def _ioctx(self, pool: str | None = None) -> Iterator[Any]:
        rados, _ = ceph.bindings("[libvirt] images_type = rbd")
        self.connect()
        try:
            ioctx = self._client.open_ioctx(pool or self.pool)
        except rados.Error as err:
            raise exception.BackendUnavailable(
                f"Ceph pool {pool or self.pool!r} unavailable: {err}") from err
        try:
            yield ioctx
        finally:
            ioctx.close()

    # --- disks ----------------------------------------------------------------------------------

    def spec(self, instance_uuid: str) -> RbdDiskSpec:
        self.connect()
        return RbdDiskSpec(self.pool, disk_name(instance_uuid), self.hosts, self.user,
                           self.secret_uuid)

    def create_root(self, instance_uuid: str, source_path: str, disk_format: str,
                    location: str, min_size_bytes: int) -> RbdDiskSpec:
        """Make ``<uuid>_disk``: a clone when :func:`clone_source` allows, else an import of
        ``source_path``; at least ``min_size_bytes``. A failure leaves no image behind; an
        existing ``<uuid>_disk`` is Conflict and left alone here (spawn's cleanup removes
        it: no domain has it, it is a leftover of an earlier attempt)."""
        _, rbd = ceph.bindings("[libvirt] images_type = rbd")
        self.connect()
        name = disk_name(instance_uuid)
        parent = clone_source(location, disk_format, self.fsid)
        with self._ioctx() as ioctx:
            try:
                if parent is not None:
                    with self._ioctx(parent.pool) as parent_ioctx:
                        rbd.RBD().clone(parent_ioctx, parent.name, parent.snap, ioctx, name,
                                        features=LAYERING)
                else:
                    # Inspected before qemu-img opens it (the cached file may have changed).
                    size = image.inspect(source_path, disk_format,
                                         field=f"image file {source_path}").virtual_size
                    rbd.RBD().create(ioctx, name, size, old_format=False, features=LAYERING)
            except rbd.ImageExists:
                raise exception.Conflict(
                    f"RBD image {self.pool}/{name} exists already", instance=instance_uuid
                ) from None
            except rbd.ImageNotFound as err:
                raise exception.DriverError(
                    f"cloning {parent}: the image store's snapshot is gone: {err}") from None
            try:
                if parent is None:
                    self._convert(["-f", disk_format, "-O", "raw", source_path,
                                   self.qemu_filename(name)], f"importing {source_path} into "
                                  f"{self.pool}/{name}", target=True)
                with rbd.Image(ioctx, name) as made:
                    if int(made.size()) < min_size_bytes:
                        made.resize(min_size_bytes)
            except BaseException:
                with contextlib.suppress(Exception):
                    ceph.remove_image(ioctx, name)
                raise
        LOG.info("root disk %s/%s of %s: %s", self.pool, name, instance_uuid,
                 f"clone of {parent.pool}/{parent.name}@{parent.snap}" if parent else
                 f"import of {source_path}")
        return self.spec(instance_uuid)

    def remove(self, instance_uuid: str, pool: str | None = None) -> bool:
        """Remove ``<uuid>_disk`` (from ``pool``, default the configured one); False when it
        was not there (delete is idempotent)."""
        _, rbd = ceph.bindings("[libvirt] images_type = rbd")
        name = disk_name(instance_uuid)
        pool = pool or self.pool
        with self._ioctx(pool) as ioctx:
            try:
                return ceph.remove_image(ioctx, name)
            except rbd.ImageBusy as err:
                raise exception.DriverError(
                    f"RBD image {pool}/{name} is still in use (a watcher holds it): "
                    f"{err}") from err

    def capacity(self) -> tuple[int, int]:
        """``(total, free)`` bytes of the cluster: where root disks take their space from
        (a compute host's local disk holds none of it)."""
        rados, _ = ceph.bindings("[libvirt] images_type = rbd")
        self.connect()
        try:
            stats = self._client.get_cluster_stats()
        except rados.Error as err:
            raise exception.BackendUnavailable(
                f"Ceph cluster {self.fsid} did not report its capacity: {err}") from err
        total = int(stats["kb"]) * 1024
        return total, min(int(stats["kb_avail"]) * 1024, total)

    def exists(self, instance_uuid: str) -> bool:
        _, rbd = ceph.bindings("[libvirt] images_type = rbd")
        with self._ioctx() as ioctx:
            return disk_name(instance_uuid) in rbd.RBD().list(ioctx)

    def export(self, pool: str, name: str, target: str, target_format: str) -> None:
        """Write the RBD image ``pool/name`` to the file ``target`` (a cold snapshot: no QEMU
        has the image open) in ``target_format``, under a temporary name renamed into place."""
        partial = target + ".part"
        try:
            self._convert(["-f", "raw", "-O", target_format, self.qemu_filename(name, pool),
                           partial], f"writing snapshot {target} from {pool}/{name}")
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)

    # --- qemu-img ---------------------------------------------------------------------------

    def qemu_filename(self, name: str, pool: str | None = None) -> str:
        """A ``json:`` filename qemu-img opens ``pool/name`` by (built with json.dumps)."""
        file: dict[str, str] = {"driver": "rbd", "pool": pool or self.pool, "image": name}
        if self.ceph_conf:
            file["conf"] = self.ceph_conf
        if self.user:
            file["user"] = self.user
        return "json:" + json.dumps({"driver": "raw", "file": file}, sort_keys=True)

    @staticmethod
    def _convert(args: list[str], what: str, *, target: bool = False) -> None:
        # -n: the target exists (made above with the bindings), qemu-img must not create it
        images.run_qemu_img(["convert", *(["-n"] if target else []), *args], what,
                            hint="QEMU's rbd block driver: Debian's qemu-block-extra")
