"""The RBD volume driver: Ceph images through the rados/rbd Python bindings.

* volumes are format-2 images ``volume-<id>`` in ``rbd_pool`` (layering feature);
* snapshots are RBD snapshots ``snapshot-<id>``, protected so they can be cloned;
* from-snapshot and clone are copy-on-write clones; a clone goes through a protected temporary
  snapshot ``<new volume>.clone_snap`` on the source, and once the chain would exceed
  ``rbd_max_clone_depth`` the new volume is flattened and the temporary snapshot removed
  (depth 0 = always a full copy);
* deleting a snapshot or a volume that still has clones flattens those clones first, so a
  user never has to know about the hidden dependencies;
* a volume from a raw image of the ``rbd`` image store on the same cluster (the location's
  fsid is this cluster's, its pool readable by this client) is a copy-on-write clone of the
  image's protected snapshot (``clone_image``), resized to the volume's size; the image store
  refuses to delete an image while such clones exist. Any other image is copied;
* extend is ``Image.resize``; exports and connections are no-ops (librbd clients connect to
  the monitors themselves); ``connection_info`` carries the monitors from ``mon dump``;
* stats come from the cluster's ``df`` (pool ``stored`` / ``max_avail``, Cinder's dynamic
  total = free + used); a cluster that reports no capacity (no ceph-mgr running) reports
  ``unknown``, which is what the keyword means;
* connecting uses ``rados_connect_timeout`` and retries ``rados_connection_retries`` times,
  ``rados_connection_interval`` seconds apart, before raising BackendUnavailable.

The bindings come from the distribution (python3-rados/python3-rbd), not PyPI.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.volume import (
    SOURCE_NAME,
    GiB,
    ImageFile,
    ModelUpdate,
    Snapshot,
    StoreImage,
    Volume,
    VolumeDriver,
    source_name,
)
from stackcore_drivers import ceph
from stackcore_drivers.volume.processes import execute

if TYPE_CHECKING:
    from oslo_config import cfg



OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("rbd_pool", default="rbd", help="RADOS pool holding the volumes."),
    cfg.StrOpt("rbd_user", help="Ceph client id (cephx user); unset: the default client, and "
               "connection_info says auth is disabled."),
    cfg.StrOpt("rbd_ceph_conf", default="", help="ceph.conf path ('' = librados default)."),
    cfg.StrOpt("rbd_cluster_name", default="ceph", help="Ceph cluster name."),
    cfg.StrOpt("rbd_secret_uuid", help="libvirt secret UUID for the cephx key; unset: the "
               "cluster FSID."),
    cfg.IntOpt("rbd_max_clone_depth", default=5, min=0,
               help="Longest copy-on-write clone chain before a clone is flattened "
               "(0: clones are always full copies)."),
    cfg.BoolOpt("rbd_flatten_volume_from_snapshot", default=False,
                help="Flatten volumes made from snapshots (no dependency on the snapshot)."),
    cfg.IntOpt("rbd_store_chunk_size", default=4, min=1,
               help="Object size in MiB (a power of two) of new images."),
    cfg.IntOpt("rados_connect_timeout", default=-1,
               help="Seconds for monitor/OSD operations and connecting; < 0: librados "
               "defaults."),
    cfg.IntOpt("rados_connection_retries", default=3, min=1,
               help="Attempts to connect to the cluster."),
    cfg.IntOpt("rados_connection_interval", default=5, min=0,
               help="Seconds between connection attempts."),
])

# librbd feature bits (rbd.RBD_FEATURE_*), spelt out so that loading needs no bindings.
LAYERING, EXCLUSIVE_LOCK, OBJECT_MAP, FAST_DIFF = 1, 4, 8, 16

#: Glance's (and the rbd image store's) location of an image: its protected snapshot
_LOCATION = re.compile(r"^rbd://(?P<fsid>[^/]+)/(?P<pool>[^/]+)/(?P<name>[^/]+)/(?P<snap>[^/]+)\Z")
#: what the kit's stand-in image store names its images (the rbd image store's names)
_CLONE_SOURCE_PREFIX, _CLONE_SOURCE_SNAP = "image-", "snap"


def _features(volume: Volume) -> int:
    """Cinder's image features: with the object map librbd (and qemu's ``map``) knows which
    objects hold data, so a thin image is seen to be thin. A multiattach volume gets layering
    only: an exclusive lock passed between several writing hosts would be ping-pong (Cinder
    disables the same features for multiattach)."""
    if volume.multiattach:
        return LAYERING
    return LAYERING | EXCLUSIVE_LOCK | OBJECT_MAP | FAST_DIFF


def _bindings() -> tuple[Any, Any]:
    return ceph.bindings("the rbd driver")


class RbdDriver(VolumeDriver):
    """Ceph RBD images, copy-on-write clones, flatten past the maximum clone depth."""

    VERSION = "1.0.0"
    # Backend libraries, imported on first use; the loader checks they are installed.
    REQUIRES: ClassVar[Mapping[str, str]] = {
        "rados": "Debian's python3-rados; see tools/backends/python-bindings.sh",
        "rbd": "Debian's python3-rbd; see tools/backends/python-bindings.sh",
    }
    VENDOR_NAME = "Open Source"
    STORAGE_PROTOCOL = "ceph"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "thin_provisioning": True,
        "thick_provisioning": False,
        "multiattach": True,
        "online_extend": True,
        "zero_on_delete": False,  # RADOS objects of a new image read as zeros
        "clone_image": True,
        # an image of the pool without snapshots and not open anywhere, renamed volume-<id>
        "manage_existing": True,
    }
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_cloned_volume": ("clone:after_snapshot", "clone:after_clone"),
        "create_volume_from_snapshot": ("from_snapshot:after_clone",),
        "create_snapshot": ("snapshot:after_create",),
        "copy_volume_to_image": ("volume_to_image:after_export",),
        "clone_image": ("clone_image:after_clone",),
    }

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        super().__init__(conf, backend, host)
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    # --- connection ----------------------------------------------------------------------

    def _connect(self) -> Any:
        """A connected client: ``rados_connection_retries`` attempts,
        ``rados_connection_interval`` seconds apart (tenacity), then BackendUnavailable."""
        import tenacity

        rados, _ = _bindings()
        conf = self.configuration

        def attempt() -> Any:
            return ceph.connect(rados, user=conf.rbd_user, clustername=conf.rbd_cluster_name,
                                conffile=conf.rbd_ceph_conf,
                                timeout=conf.rados_connect_timeout
                                if conf.rados_connect_timeout >= 0 else None,
                                pool=conf.rbd_pool)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(conf.rados_connection_retries),
            wait=tenacity.wait_fixed(conf.rados_connection_interval),
            retry=tenacity.retry_if_exception_type(rados.Error), reraise=True)
        try:
            return retrying(attempt)
        except rados.Error as last:
            raise exception.BackendUnavailable(
                f"cannot connect to Ceph cluster {conf.rbd_cluster_name!r} pool "
                f"{conf.rbd_pool!r} after {conf.rados_connection_retries} attempt(s): "
                f"{type(last).__name__}: {last}") from None

    def _rados(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _drop_client(self, client: Any) -> None:
        """Forget ``client``: the next call connects a new one. It is not shut down here
        (other threads may still be in a call on it); it goes when the last one is done."""
        with self._lock:
            if self._client is client:
                self._client = None

    @contextlib.contextmanager
    def _ioctx(self) -> Iterator[Any]:
        rados, rbd = _bindings()
        client = self._rados()
        try:
            ioctx = client.open_ioctx(self.configuration.rbd_pool)
        except rados.Error as err:
            self._drop_client(client)  # a broken client is rebuilt on the next call
            raise exception.BackendUnavailable(f"Ceph pool unavailable: {err}") from err
        try:
            yield ioctx
        except (rados.TimedOut, rbd.Timeout):
            # A client whose OSD restarted (new address, same id) can time out on every
            # later operation: it never learns the new map (seen with the one OSD of a
            # cluster killed and started again). Cinder connects a client per operation;
            # here the client is kept while it works and replaced after a timeout.
            self._drop_client(client)
            raise
        finally:
            ioctx.close()

    @contextlib.contextmanager
    def _image(self, ioctx: Any, name: str, snapshot: str | None = None) -> Iterator[Any]:
        _, rbd = _bindings()
        try:
            image = rbd.Image(ioctx, name, snapshot=snapshot)
        except rbd.ImageNotFound as err:
            raise exception.NotFound("rbd image", name) from err
        try:
            yield image
        finally:
            image.close()

    def _mon_command(self, command: dict[str, Any]) -> Any:
        ret, out, err = self._rados().mon_command(json.dumps(command), b"")
        if ret != 0:
            raise exception.DriverError(f"ceph {command['prefix']} failed ({ret}): {err}")
        return json.loads(out)

    # --- set-up and stats ------------------------------------------------------------------

    def do_setup(self) -> None:
        _bindings()
        self._rados()

    def check_for_setup_error(self) -> None:
        with self._ioctx():
            pass

    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        conf = self.configuration
        total: float | str = "unknown"
        free: float | str = "unknown"
        state = "down"
        try:
            df = self._mon_command({"prefix": "df", "format": "json"})
            pool = next((p for p in df.get("pools", []) if p["name"] == conf.rbd_pool), None)
            if pool is not None:
                used = pool["stats"].get("stored", pool["stats"].get("bytes_used", 0))
                avail = pool["stats"].get("max_avail", 0)
                state = "up"
                if used + avail > 0:  # no ceph-mgr: df reports zeros, which means "unknown"
                    free = round(avail / GiB, 2)
                    total = round((avail + used) / GiB, 2)
        except exception.StackcoreError:
            pass
        mosr = conf.max_over_subscription_ratio or self.conf.volume.max_over_subscription_ratio
        provisioned = 0
        with self._ioctx() as ioctx:
            _, rbd = _bindings()
            for name in rbd.RBD().list(ioctx):
                if name.startswith("volume-"):
                    with contextlib.suppress(exception.NotFound), self._image(ioctx, name) as im:
                        provisioned += im.size()
        common = {
            "reserved_percentage": conf.reserved_percentage,
            "thin_provisioning_support": True,
            "thick_provisioning_support": False,
            "max_over_subscription_ratio": mosr if mosr == "auto" else float(mosr),
            "multiattach": True,
            "online_extend_support": True,
            "provisioned_capacity_gb": round(provisioned / GiB, 2),
            "total_capacity_gb": total,
            "free_capacity_gb": free,
        }
        return {
            "volume_backend_name": self.backend_name,
            "vendor_name": self.VENDOR_NAME,
            "driver_version": self.VERSION,
            "storage_protocol": self.STORAGE_PROTOCOL,
            "backend_state": state,
            "location_info": f"{conf.rbd_cluster_name}:{conf.rbd_pool}",
            "pools": [{"pool_name": conf.rbd_pool, **common}],
            **common,
        }

    def list_backend_objects(self) -> list[str]:
        _, rbd = _bindings()
        names = []
        with self._ioctx() as ioctx:
            for name in rbd.RBD().list(ioctx):
                names.append(name)
                with contextlib.suppress(exception.NotFound), self._image(ioctx, name) as im:
                    names.extend(f"{name}@{s['name']}" for s in im.list_snaps())
        return sorted(names)

    # --- helpers ---------------------------------------------------------------------------

    def _order(self) -> int:
        chunk_mb: int = self.configuration.rbd_store_chunk_size
        return (chunk_mb * 1024 * 1024).bit_length() - 1

    def _flatten_children(self, ioctx: Any, image: Any) -> None:
        """Flatten every clone of every snapshot of ``image`` (they stop depending on it)."""
        for pool, child in image.list_children():
            if pool != self.configuration.rbd_pool:
                raise exception.DriverError(f"{child} in pool {pool} depends on an image here")
            with self._image(ioctx, child) as clone:
                clone.flatten()

    def _remove_snapshot(self, ioctx: Any, image_name: str, snap: str) -> None:
        """Unprotect (flattening clones first) and remove; absent = done."""
        _, rbd = _bindings()
        try:
            with self._image(ioctx, image_name) as image:
                if snap not in {s["name"] for s in image.list_snaps()}:
                    return
                if image.is_protected_snap(snap):
                    with self._image(ioctx, image_name, snapshot=snap) as at_snap:
                        self._flatten_children(ioctx, at_snap)
                    image.unprotect_snap(snap)
                image.remove_snap(snap)
        except exception.NotFound:
            return
        except rbd.ImageBusy as err:
            raise exception.DriverError(f"snapshot {image_name}@{snap} is busy: {err}") from err

    def _clone_depth(self, ioctx: Any, name: str) -> int:
        """Length of ``name``'s parent chain; a parent may be in another pool (a volume
        cloned from an image of the rbd image store has its parent in the images' pool)."""
        _, rbd = _bindings()
        depth = 0
        pool = self.configuration.rbd_pool
        while True:
            with contextlib.ExitStack() as stack:
                here = ioctx if pool == self.configuration.rbd_pool else stack.enter_context(
                    contextlib.closing(self._rados().open_ioctx(pool)))
                with self._image(here, name) as image:
                    try:
                        pool, parent, _ = image.parent_info()
                    except rbd.ImageNotFound:
                        return depth
            depth += 1
            name = parent

    def _resize_to(self, ioctx: Any, volume: Volume, size_gb: int) -> None:
        with self._image(ioctx, volume.name) as image:
            if image.size() < size_gb * GiB:
                image.resize(size_gb * GiB)

    def _remove_image(self, ioctx: Any, name: str) -> None:
        _, rbd = _bindings()
        try:
            with self._image(ioctx, name) as image:
                snaps = [snap["name"] for snap in image.list_snaps()]
            for snap in snaps:
                self._remove_snapshot(ioctx, name, snap)
        except exception.NotFound:
            pass  # RBD().remove below is the judge of whether the image exists
        try:
            ceph.remove_image(ioctx, name)
        except rbd.ImageBusy as err:
            raise exception.DriverError(f"{name} is busy (a watcher holds it): {err}") from err

    # --- volumes ---------------------------------------------------------------------------

    def create_volume(self, volume: Volume) -> ModelUpdate:
        _, rbd = _bindings()
        with self._ioctx() as ioctx:
            try:
                rbd.RBD().create(ioctx, volume.name, volume.size_bytes, order=self._order(),
                                 old_format=False, features=_features(volume))
            except rbd.ImageExists as err:
                raise exception.Conflict(f"{volume.name} already exists") from err
        return None

    def delete_volume(self, volume: Volume) -> None:
        with self._ioctx() as ioctx:
            self._remove_image(ioctx, volume.name)

    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        _, rbd = _bindings()
        with self._ioctx() as ioctx:
            try:
                # the parent's object size: librbd refuses smaller objects than the parent's,
                # and a volume cloned from a store image has the image's (see clone_image)
                rbd.RBD().clone(ioctx, snapshot.volume_name, snapshot.name, ioctx, volume.name,
                                features=_features(volume))
            except rbd.ImageNotFound as err:
                raise exception.NotFound("snapshot", snapshot.id) from err
            self.checkpoint("from_snapshot:after_clone")
            depth = self._clone_depth(ioctx, volume.name)
            if (self.configuration.rbd_flatten_volume_from_snapshot
                    or depth > self.configuration.rbd_max_clone_depth):
                with self._image(ioctx, volume.name) as image:
                    image.flatten()
            self._resize_to(ioctx, volume, volume.size)
        return None

    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        _, rbd = _bindings()
        max_depth = self.configuration.rbd_max_clone_depth
        with self._ioctx() as ioctx:
            if max_depth == 0:
                with self._image(ioctx, src_volume.name) as source:
                    source.copy(ioctx, volume.name)
                self._resize_to(ioctx, volume, volume.size)
                return None
            snap = f"{volume.name}.clone_snap"
            with self._image(ioctx, src_volume.name) as source:
                source.create_snap(snap)
                try:
                    source.protect_snap(snap)
                    self.checkpoint("clone:after_snapshot")
                    rbd.RBD().clone(ioctx, src_volume.name, snap, ioctx, volume.name,
                                    features=_features(volume))  # the parent's object size
                    self.checkpoint("clone:after_clone")
                    if self._clone_depth(ioctx, volume.name) > max_depth:
                        with self._image(ioctx, volume.name) as clone:
                            clone.flatten()
                        self._remove_snapshot(ioctx, src_volume.name, snap)
                except BaseException:
                    # The new image is the manager's to delete; the temporary snapshot is ours.
                    with contextlib.suppress(Exception):
                        self._remove_image(ioctx, volume.name)
                    self._remove_snapshot(ioctx, src_volume.name, snap)
                    raise
            self._resize_to(ioctx, volume, volume.size)
        return None

    def extend_volume(self, volume: Volume, new_size: int) -> None:
        with self._ioctx() as ioctx, self._image(ioctx, volume.name) as image:
            image.resize(new_size * GiB)

    # --- manage / unmanage -----------------------------------------------------------------

    @staticmethod
    def _managed_name(existing_ref: Mapping[str, Any]) -> str:
        """The image ``existing_ref`` names: a name of an image of this pool (RBD's own rule:
        no ``/`` nor ``@``, which image specs use as separators). Any other character is
        data handed to librbd, never to a shell."""
        name = source_name(existing_ref)
        if "/" in name or "@" in name:
            raise exception.Invalid("existing_ref", f"{name!r} is not an RBD image name (no "
                                    "'/' or '@'): images of this driver's pool only",
                                    existing_ref)
        return name

    def _why_not_manageable(self, ioctx: Any, name: str) -> tuple[int, str | None]:
        """(size in bytes, why the image may not be adopted or None). Not adoptable: an
        image with snapshots (their names are not this driver's, and deleting the volume
        would remove them and flatten their clones - Cinder allows it, this driver does not:
        remove or flatten them first) or one a client has open (watchers: in use).
        Opened read-only, which registers no watcher of its own."""
        _, rbd = _bindings()
        try:
            image = rbd.Image(ioctx, name, read_only=True)
        except rbd.ImageNotFound as err:
            raise exception.NotFound("backend volume", name,
                                     f"pool {self.configuration.rbd_pool} has no image "
                                     f"{name}") from err
        with contextlib.closing(image):
            size = int(image.size())
            snaps = [s["name"] for s in image.list_snaps()]
            watchers = list(image.watchers_list())
        if snaps:
            return size, f"has {len(snaps)} snapshot(s) ({', '.join(sorted(snaps)[:3])})"
        if watchers:
            return size, f"in use: open by {len(watchers)} client(s)"
        return size, None

    def manage_existing_get_size(self, volume: Volume, existing_ref: Mapping[str, Any]) -> int:
        name = self._managed_name(existing_ref)
        with self._ioctx() as ioctx:
            size, _ = self._why_not_manageable(ioctx, name)
        return math.ceil(size / GiB)

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        """``RBD.rename`` to ``volume-<id>`` (in the pool), then grown to the volume's
        rounded-up size; a failed grow renames it back."""
        _, rbd = _bindings()
        name = self._managed_name(existing_ref)
        with self._ioctx() as ioctx:
            size, reason = self._why_not_manageable(ioctx, name)
            if reason is not None:
                raise exception.Invalid("existing_ref", f"image {name} {reason}",
                                        existing_ref)
            try:
                rbd.RBD().rename(ioctx, name, volume.name)
            except rbd.ImageExists as err:
                raise exception.Conflict(f"{volume.name} already exists") from err
            try:
                if size < volume.size_bytes:
                    self._resize_to(ioctx, volume, volume.size)
            except BaseException:
                rbd.RBD().rename(ioctx, volume.name, name)  # left as it was found
                raise
        return None

    def unmanage(self, volume: Volume) -> None:
        return None  # the image stays, with its name and data (Cinder's unmanage)

    def list_manageable_volumes(self) -> list[dict[str, Any]]:
        _, rbd = _bindings()
        found = []
        with self._ioctx() as ioctx:
            for name in sorted(rbd.RBD().list(ioctx)):
                try:
                    self._managed_name({SOURCE_NAME: name})
                    size, reason = self._why_not_manageable(ioctx, name)
                except exception.NotFound:
                    continue  # removed while listed
                except exception.Invalid as err:
                    size, reason = 0, str(err)
                found.append({"reference": {SOURCE_NAME: name},
                              "size": math.ceil(size / GiB),
                              "safe_to_manage": reason is None, "reason_not_safe": reason})
        return found

    # --- snapshots -------------------------------------------------------------------------

    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        with self._ioctx() as ioctx, self._image(ioctx, snapshot.volume_name) as image:
            image.create_snap(snapshot.name)
            self.checkpoint("snapshot:after_create")
            image.protect_snap(snapshot.name)
        return None

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        with self._ioctx() as ioctx:
            self._remove_snapshot(ioctx, snapshot.volume_name, snapshot.name)

    # --- attach / detach -------------------------------------------------------------------

    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        return None

    def ensure_export(self, volume: Volume) -> ModelUpdate:
        return None

    def remove_export(self, volume: Volume) -> None:
        return None

    def _monitors(self) -> tuple[list[str], list[str]]:
        dump = self._mon_command({"prefix": "mon dump", "format": "json"})
        hosts, ports = [], []
        for mon in dump.get("mons", []):
            addrs = mon.get("public_addrs", {}).get("addrvec", [])
            v1 = next((a["addr"] for a in addrs if a.get("type") == "v1"), None)
            addr = v1 or mon.get("addr", "").split("/")[0]
            host, _, port = addr.rpartition(":")
            if host:
                hosts.append(host.strip("[]"))
                ports.append(port)
        return hosts, ports

    def initialize_connection(
        self, volume: Volume, connector: Mapping[str, Any]
    ) -> dict[str, Any]:
        conf = self.configuration
        with self._ioctx() as ioctx, self._image(ioctx, volume.name):
            pass  # the image must exist
        hosts, ports = self._monitors()
        return {
            "driver_volume_type": "rbd",
            "data": {
                "name": f"{conf.rbd_pool}/{volume.name}",
                "hosts": hosts,
                "ports": ports,
                "cluster_name": conf.rbd_cluster_name,
                "auth_enabled": conf.rbd_user is not None,
                "auth_username": conf.rbd_user,
                "secret_type": "ceph",
                "secret_uuid": conf.rbd_secret_uuid or self._rados().get_fsid(),
                "volume_id": volume.id,
                "discard": True,
            },
        }

    def terminate_connection(
        self, volume: Volume, connector: Mapping[str, Any] | None
    ) -> None:
        return None

    # --- images ----------------------------------------------------------------------------

    def _qemu_spec(self, volume: Volume) -> str:
        conf = self.configuration
        spec = f"rbd:{conf.rbd_pool}/{volume.name}"
        if conf.rbd_ceph_conf:
            spec += f":conf={conf.rbd_ceph_conf}"
        if conf.rbd_user:
            spec += f":id={conf.rbd_user}"
        return spec

    def _clonable(self, image: StoreImage) -> tuple[str, str, str] | None:
        """``(pool, image name, snapshot)`` of a store image this backend can clone from:
        a location of this very cluster whose pool this client reaches and whose snapshot is
        protected; None otherwise (then the image is copied)."""
        rados, rbd = _bindings()
        match = _LOCATION.match(image.location)
        if match is None or image.disk_format != "raw":
            return None
        if match.group("fsid") != str(self._rados().get_fsid()):
            return None  # another cluster: a clone cannot cross clusters
        pool, name, snap = match.group("pool"), match.group("name"), match.group("snap")
        try:
            with contextlib.closing(self._rados().open_ioctx(pool)) as ioctx, \
                    rbd.Image(ioctx, name, read_only=True) as parent:
                return (pool, name, snap) if parent.is_protected_snap(snap) else None
        except (rados.Error, rbd.Error):
            # no such pool or image, or no read access for this client
            return None

    def clone_image(self, volume: Volume, image: StoreImage) -> tuple[bool, ModelUpdate]:
        _, rbd = _bindings()
        if self.configuration.rbd_max_clone_depth == 0:
            return False, None  # depth 0: volumes are always full copies
        source = self._clonable(image)
        if source is None:
            return False, None
        pool, name, snap = source
        with self._ioctx() as ioctx, contextlib.closing(self._rados().open_ioctx(pool)) as src:
            try:
                # the parent's object size (librbd refuses a clone with smaller objects
                # than its parent's; the image store's default is 8 MiB, ours 4)
                rbd.RBD().clone(src, name, snap, ioctx, volume.name,
                                features=_features(volume))
            except rbd.ImageExists as err:
                raise exception.Conflict(f"{volume.name} already exists") from err
            try:
                self.checkpoint("clone_image:after_clone")
                self._resize_to(ioctx, volume, volume.size)
            except BaseException:
                # the half-made clone is ours to remove: the image's snapshot must not keep
                # a child nobody knows (it would block the image's delete)
                with contextlib.suppress(Exception):
                    self._remove_image(ioctx, volume.name)
                raise
        return True, None

    def store_clone_source(self, image: ImageFile) -> str:
        """The rbd image store's layout, in this driver's pool: ``image-<id>@snap``."""
        _, rbd = _bindings()
        name = _CLONE_SOURCE_PREFIX + image.id
        size = os.path.getsize(image.path)
        with self._ioctx() as ioctx:
            rbd.RBD().create(ioctx, name, size, old_format=False, features=LAYERING)
            try:
                with rbd.Image(ioctx, name) as target, open(image.path, "rb") as data:
                    offset = 0
                    while chunk := data.read(4 * 1024 * 1024):
                        target.write(chunk, offset)
                        offset += len(chunk)
                    target.create_snap(_CLONE_SOURCE_SNAP)
                    target.protect_snap(_CLONE_SOURCE_SNAP)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._remove_image(ioctx, name)
                raise
        fsid = self._rados().get_fsid()
        return f"rbd://{fsid}/{self.configuration.rbd_pool}/{name}/{_CLONE_SOURCE_SNAP}"

    def delete_clone_source(self, location: str) -> None:
        match = _LOCATION.match(location)
        if match is None or match.group("pool") != self.configuration.rbd_pool:
            raise exception.Invalid("location", "is not one store_clone_source made", location)
        name, snap = match.group("name"), match.group("snap")
        with self._ioctx() as ioctx:
            try:
                with self._image(ioctx, name, snapshot=snap) as at_snap:
                    children = list(at_snap.list_children())
            except exception.NotFound:
                children = []
            if children:
                raise exception.Conflict(f"{name} has {len(children)} clone(s)")
            self._remove_image(ioctx, name)

    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        execute("qemu-img", "convert", "-n", "-f", image.disk_format, "-O", "raw",
                image.path, self._qemu_spec(volume), timeout=3600)

    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        try:
            execute("qemu-img", "convert", "-f", "raw", "-O", image.disk_format,
                    self._qemu_spec(volume), image.path, timeout=3600)
            self.checkpoint("volume_to_image:after_export")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(image.path)
            raise

