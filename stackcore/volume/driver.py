"""The volume driver contract.

This module *is* the specification a volume driver is written against. The required methods
are Cinder's minimum features, complete (Cinder's ``VolumeDriverCore`` leaves clone and the
export calls out of its interface although clone is a minimum feature):

============================  =====================================================
minimum feature               methods
============================  =====================================================
volume create / delete        :meth:`create_volume`, :meth:`delete_volume`
attach / detach               :meth:`create_export`, :meth:`ensure_export`,
                              :meth:`remove_export`, :meth:`initialize_connection`,
                              :meth:`terminate_connection` (``connector=None`` = force)
snapshot create / delete      :meth:`create_snapshot`, :meth:`delete_snapshot`
volume from snapshot          :meth:`create_volume_from_snapshot`
get volume stats              :meth:`get_volume_stats` (schema: :mod:`stackcore.volume.stats`)
image to volume               :meth:`copy_image_to_volume`
volume to image               :meth:`copy_volume_to_image`
clone volume                  :meth:`create_cloned_volume`
extend volume                 :meth:`extend_volume`
============================  =====================================================

Optional capabilities add methods whose base default raises
:class:`~stackcore.exception.CapabilityNotSupported` (declared in ``capabilities``, see
:data:`CAPABILITIES`): ``clone_image`` - :meth:`VolumeDriver.clone_image`, a copy-on-write
volume from an image of an image store on the same backend (Cinder's ``clone_image``);
``manage_existing`` - :meth:`VolumeDriver.manage_existing_get_size`,
:meth:`VolumeDriver.manage_existing`, :meth:`VolumeDriver.unmanage`,
:meth:`VolumeDriver.list_manageable_volumes`: bring an object already on the backend under
management as a volume, and give a volume up keeping its data (Cinder's "manage existing").

General rules, for every method:

* One driver object serves one backend (one ``enabled_backends`` section) on one host. The
  manager serialises calls per volume (and locks a clone's or snapshot's source too), but calls
  for different volumes may run concurrently in threads.
* Drivers never touch the database; they get :mod:`stackcore.volume.objects` values and may
  return a *model update* (a dict with ``provider_location``, ``provider_auth`` and/or
  ``driver_data``) which the manager stores and hands back on later calls.
* Raising means "this step failed". For a create-type call (create, from snapshot, clone,
  image to volume) the manager then records a fault, moves the volume to ``error`` and calls
  :meth:`delete_volume` to remove whatever was half made: ``delete_volume`` must cope with any
  partial state those calls can leave. Temporary backend objects a multi-step operation makes
  for itself (a clone's temporary snapshot) are the driver's to remove before it re-raises.
* Multi-step operations call :meth:`VolumeDriver.checkpoint` between their steps with the names
  they declare in ``FAULT_POINTS``; the conformance suite makes each point raise in turn and
  checks that nothing is left on the backend (:meth:`list_backend_objects`).
* Raise :class:`~stackcore.exception.BackendUnavailable` when the backend cannot be reached,
  :class:`~stackcore.exception.DriverError` for other backend failures; any other exception is
  wrapped as a ``DriverError`` naming the step by the manager.
* Never log or put in an exception message a secret (CHAP password, cephx key).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.plugins.contract import Contract
from stackcore.volume.objects import ImageFile, Snapshot, StoreImage, Volume

if TYPE_CHECKING:
    from oslo_config import cfg

NAMESPACE = "stackcore.volume.drivers"

#: Optional features a driver declares in its ``capabilities`` mapping, with the (required)
#: methods whose behaviour each one changes. The support matrix is generated from these
#: declarations and the conformance results.
CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    "thin_provisioning": ("create_volume",),
    "thick_provisioning": ("create_volume",),
    "multiattach": ("initialize_connection", "terminate_connection"),
    "online_extend": ("extend_volume",),
    # delete_volume overwrites the data before freeing the space (thick backends, whose freed
    # space the next volume gets); the kit verifies it through raw_space().
    "zero_on_delete": ("delete_volume",),
    # a volume from a store image as a copy-on-write clone of the stored image (rbd volumes
    # from the rbd image store); the two kit hooks stand in for that image store
    "clone_image": ("clone_image", "store_clone_source", "delete_clone_source"),
    # adopt an object already on the backend as a volume (renamed to the volume's name), and
    # give a volume up keeping its object and data (Cinder's manage / unmanage)
    "manage_existing": ("manage_existing", "manage_existing_get_size", "unmanage",
                        "list_manageable_volumes"),
}

#: The only form of ``existing_ref`` (Cinder's): the backend's own name of the object.
SOURCE_NAME = "source-name"

#: Keys of one entry of :meth:`VolumeDriver.list_manageable_volumes` (``extra_info``, a
#: JSON mapping, is optional: e.g. the pool the object is in).
MANAGEABLE_KEYS = frozenset({"reference", "size", "safe_to_manage", "reason_not_safe"})


def source_name(existing_ref: Any) -> str:
    """The backend name ``existing_ref`` gives (``{"source-name": "<name>"}``, Cinder's form),
    or :class:`~stackcore.exception.Invalid` naming ``existing_ref``. Drivers call it first
    in :meth:`VolumeDriver.manage_existing_get_size` and :meth:`VolumeDriver.manage_existing`
    and add their own rules for what a name may be."""
    if not isinstance(existing_ref, Mapping) or set(existing_ref) != {SOURCE_NAME}:
        raise exception.Invalid("existing_ref", f"must be {{{SOURCE_NAME!r}: <name of the "
                                "object on the backend>}", existing_ref)
    name = existing_ref[SOURCE_NAME]
    if not isinstance(name, str) or not name or len(name) > 255 or not name.isprintable():
        raise exception.Invalid("existing_ref", f"{SOURCE_NAME!r} must be a printable name "
                                "of 1 to 255 characters", existing_ref)
    return name

ModelUpdate = dict[str, Any] | None
"""What create/export calls may return: ``provider_location``, ``provider_auth``,
``driver_data`` (any JSON mapping) - stored by the manager, handed back later."""

MODEL_UPDATE_KEYS = frozenset({"provider_location", "provider_auth", "driver_data"})

#: Feature groups :meth:`VolumeDriver.unavailable_features` may name.
FEATURES = ("snapshot", "clone", "attach", "data", "image")

#: The backend section the conformance kit builds a driver with.
CONFORMANCE_SECTION = "backend"


class InjectedFault(exception.DriverError):
    """Raised at a checkpoint the conformance suite armed (failure injection)."""


class VolumeDriver(abc.ABC):
    """Base class of every volume driver.

    Class attributes a driver sets:

    ``VERSION``
        Its own version string, reported as ``driver_version`` in its stats.
    ``VENDOR_NAME``, ``STORAGE_PROTOCOL``
        For the stats report. ``STORAGE_PROTOCOL`` is one of the protocols this stackcore has a
        ``connection_info`` schema for (the keys of
        :data:`stackcore.volume.connection_info.PROTOCOL_TO_VOLUME_TYPE`: ``iSCSI``, ``NFS``,
        ``ceph``, ``file``); Cinder's other protocols are refused at load time, since nothing
        here could attach their volumes.
    ``capabilities``
        ``{capability: bool}`` for the keys of :data:`CAPABILITIES`; missing keys mean False.
    ``FAULT_POINTS``
        ``{operation: (checkpoint, ...)}`` - the checkpoints each multi-step operation passes.

    A driver is built once per backend as ``Driver(conf, backend, host)``: ``conf`` is the
    cloud's ConfigOpts, ``backend`` the name of the backend's config section (on which the
    options from :meth:`get_driver_options` are registered; :attr:`configuration` is that
    section), ``host`` the service host ``<host>@<backend>``.
    """

    VERSION: ClassVar[str] = ""
    VENDOR_NAME: ClassVar[str] = ""
    STORAGE_PROTOCOL: ClassVar[str] = ""
    capabilities: ClassVar[Mapping[str, bool]] = {}
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, conf: cfg.ConfigOpts, backend: str, host: str) -> None:
        self.conf = conf
        self.backend = backend
        self.host = host
        self.configuration: Any = conf[backend]
        self._armed: set[str] = set()
        self._armed_lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        """The driver's own options, registered in each backend section that uses it."""
        return []

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """Every option of a backend section using this driver, placed in the section the
        conformance kit configures (:data:`CONFORMANCE_SECTION`)."""
        from stackcore.volume.opts import BACKEND_OPTS

        return [(CONFORMANCE_SECTION, [*BACKEND_OPTS, *cls.get_driver_options()])]

    def unavailable_features(self) -> dict[str, str]:
        """Features of the contract this host cannot offer, with the reason - only for a
        missing kernel feature (e.g. ``{"snapshot": "needs device-mapper, which this kernel
        lacks"}``). Keys from :data:`FEATURES`. The manager logs them at start-up; the
        conformance suite skips exactly these with the reason. Default: none."""
        return {}

    @property
    def backend_name(self) -> str:
        """``volume_backend_name`` of this backend (defaults to the section name)."""
        return str(self.configuration.volume_backend_name or self.backend)

    # --- failure injection (conformance kit) ------------------------------------------------

    def arm_fault(self, point: str) -> None:
        """Make the next :meth:`checkpoint` ``point`` raise :class:`InjectedFault` (tests)."""
        with self._armed_lock:
            self._armed.add(point)

    def disarm_faults(self) -> None:
        """Forget every armed checkpoint (the kit calls it after each injection, so a point
        that was never reached cannot fire later)."""
        with self._armed_lock:
            self._armed.clear()

    def checkpoint(self, point: str) -> None:
        """Called by drivers between the steps of a multi-step operation. Raises if armed."""
        if not self._armed:
            return
        with self._armed_lock:
            if point not in self._armed:
                return
            self._armed.discard(point)
        raise InjectedFault(f"injected failure at {point} ({type(self).__name__})", point=point)

    # --- observation (conformance kit) -----------------------------------------------------

    def raw_space(self, volume: Volume) -> dict[str, Any] | None:
        """Where the volume's data lies in the backend's *raw* space, as a ``connection_info``
        (``{"driver_volume_type": "local", "data": {"device_path": ..., "offset": bytes,
        "size": bytes}}``) - e.g. the physical volume and extent range of a thick LV.

        Asked by the conformance kit before :meth:`delete_volume`, to verify the
        ``zero_on_delete`` capability on the backend itself: after the delete that space must
        read zeros. The kit asks it of a volume whose type says ``provisioning:type = thick``
        (a thin volume's blocks are its pool's). Drivers declaring ``zero_on_delete``
        implement it; the default says the driver does not expose its raw space."""
        raise exception.CapabilityNotSupported(type(self).__name__, "zero_on_delete (raw_space)")

    def store_clone_source(self, image: ImageFile) -> str:
        """Store the raw image file ``image.path`` as this backend's image store would keep
        image ``image.id`` (for rbd: ``image-<id>`` with a protected snapshot ``snap``), and
        return its location - the conformance kit's stand-in for an image store on the same
        backend, to test ``clone_image``. Drivers declaring ``clone_image`` implement it."""
        raise exception.CapabilityNotSupported(type(self).__name__,
                                               "clone_image (store_clone_source)")

    def delete_clone_source(self, location: str) -> None:
        """Remove what :meth:`store_clone_source` stored, as that image store's delete does:
        ``Conflict`` while volumes cloned from it still depend on it; gone already is
        success. The kit deletes the image after the cloned volume, and it must then go."""
        raise exception.CapabilityNotSupported(type(self).__name__,
                                               "clone_image (delete_clone_source)")

    # --- set-up and stats -----------------------------------------------------------------

    @abc.abstractmethod
    def do_setup(self) -> None:
        """Connect to / prepare the backend. Called once when the volume service starts, before
        any other call and before reconciliation. Raise ConfigError for bad options,
        BackendUnavailable when the backend cannot be reached: the service does not start."""

    @abc.abstractmethod
    def check_for_setup_error(self) -> None:
        """Verify the backend is usable (VG exists, share writable, pool present). Called right
        after :meth:`do_setup`; raising stops the service start-up."""

    @abc.abstractmethod
    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        """Report capacity and capabilities (:data:`stackcore.volume.stats.SCHEMA`).

        With ``refresh`` re-read the backend, else a cached report may be returned. Called
        periodically by the manager, outside any transaction; the report is validated and a bad
        one marks the backend as not reporting (nothing is scheduled on it). Always include a
        ``pools`` list (one pool named after the backend if the backend has no pools)."""

    @abc.abstractmethod
    def list_backend_objects(self) -> list[str]:
        """Names of every object this driver made on its backend (volumes, snapshots,
        temporary objects, exports), sorted; each name contains the id of the volume or
        snapshot it belongs to (``volume-<id>``, ``clone-snap-<new volume id>``,
        ``export:<volume id>`` ...), so that its owner is known. Used by reconciliation and by
        the conformance suite to prove nothing is left behind after failures and deletes."""

    # --- volumes --------------------------------------------------------------------------

    @abc.abstractmethod
    def create_volume(self, volume: Volume) -> ModelUpdate:
        """Allocate ``volume.size`` GiB on the backend (no export). A new volume never shows
        data of a deleted one. Called with the volume in ``creating``."""

    @abc.abstractmethod
    def delete_volume(self, volume: Volume) -> None:
        """Remove the volume and its data. Succeeds when the backend does not know it (deletes
        are idempotent, and this is the cleanup path after any failed create). The manager
        refuses to delete volumes with snapshots or attachments before calling this."""

    @abc.abstractmethod
    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        """Make ``volume`` with the snapshot's data. ``volume.size`` may be larger than the
        snapshot's: the new volume must have the larger size."""

    @abc.abstractmethod
    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        """Make ``volume`` as a copy of ``src_volume`` (available, not in use by another
        operation). ``volume.size`` may be larger: honour it."""

    @abc.abstractmethod
    def extend_volume(self, volume: Volume, new_size: int) -> None:
        """Grow the volume to ``new_size`` GiB keeping its data. Called on attached volumes
        (``volume.attached``) only when the driver declares ``online_extend``.

        Raising :class:`~stackcore.exception.InvalidState` *before changing anything* refuses
        an extend this volume cannot take now (an attached volume whose data a hypervisor holds
        open in a form the backend cannot grow under it): the caller gets that error and the
        volume keeps its status and size. Any other error leaves it ``error_extending`` with
        a fault."""

    # --- snapshots ------------------------------------------------------------------------

    @abc.abstractmethod
    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        """Take a point-in-time snapshot of ``snapshot.volume``. On failure the manager calls
        :meth:`delete_snapshot` for cleanup."""

    @abc.abstractmethod
    def delete_snapshot(self, snapshot: Snapshot) -> None:
        """Remove the snapshot; succeeds when it is already gone. Volumes made from it must keep
        working (flatten them, or keep a hidden dependency the driver cleans up later)."""

    # --- attach / detach ------------------------------------------------------------------

    @abc.abstractmethod
    def create_export(self, volume: Volume, connector: Mapping[str, Any]) -> ModelUpdate:
        """Expose the volume for attachment (target, LUN, CHAP). Called before
        :meth:`initialize_connection` on every attach; an already exported volume keeps its
        export. If the attach fails afterwards the manager calls :meth:`remove_export`."""

    @abc.abstractmethod
    def ensure_export(self, volume: Volume) -> ModelUpdate:
        """Re-create the export of an attached volume if the backend lost it (after a restart
        of the target daemon or of the host); nothing to do when it is there (cheap: it runs
        often). Called by start-up reconciliation and every ``periodic_interval`` seconds
        for each attached volume no request is working on."""

    @abc.abstractmethod
    def remove_export(self, volume: Volume) -> None:
        """Remove the export; succeeds when there is none. Called on the last detach and after
        a failed attach."""

    @abc.abstractmethod
    def initialize_connection(
        self, volume: Volume, connector: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the ``connection_info`` for ``connector`` (os-brick connector properties:
        ``host``, ``ip``, ``initiator``...): ``{"driver_volume_type": ..., "data": {...}}`` with
        the keys :mod:`stackcore.volume.connection_info` defines for the protocol. May be
        called repeatedly for the same connector."""

    @abc.abstractmethod
    def terminate_connection(
        self, volume: Volume, connector: Mapping[str, Any] | None
    ) -> None:
        """Revoke ``connector``'s access. ``connector=None`` is a force detach: revoke every
        connection. Succeeds when there is nothing to revoke."""

    # --- images ---------------------------------------------------------------------------

    def clone_image(self, volume: Volume, image: StoreImage) -> tuple[bool, ModelUpdate]:
        """Capability ``clone_image``: make ``volume`` as a copy-on-write clone of a store
        image, without copying its bytes. Returns ``(cloned, model update)``.

        Called by the manager *instead of* :meth:`create_volume` for a volume created from an
        image that is in an image store (``image.store``/``image.location``), only for a
        ``raw`` image (a qcow2's bytes are not the volume's blocks: no clone can give a raw
        volume; Cinder refuses the same), with the volume in ``creating`` and nothing of it
        on the backend yet. ``volume.size`` is at least the image's virtual size: the clone
        must have ``volume.size``.

        Return ``(False, None)``, having made nothing, when this image cannot be cloned here
        (another cluster, a pool this backend's client cannot reach, a location of another
        store, an image without a clonable snapshot): the manager then creates the volume and
        copies the image into it (:meth:`create_volume` + :meth:`copy_image_to_volume`), as
        for any image. Raising means the clone failed: the manager records a fault, moves
        the volume to ``error`` and calls :meth:`delete_volume`, which must remove whatever
        was half made (a clone not resized yet); nothing may stay on the image's side.

        The image store must keep refusing to delete the image while clones depend on it
        (or the driver flattens them first); deleting the volume removes the dependency."""
        raise exception.CapabilityNotSupported(type(self).__name__, "clone_image")

    # --- manage / unmanage (capability manage_existing) ------------------------------------

    def manage_existing_get_size(self, volume: Volume, existing_ref: Mapping[str, Any]) -> int:
        """Capability ``manage_existing``: the size in GiB, rounded up, of the backend object
        ``existing_ref`` names (``{"source-name": "<the backend's name of it>"}``, Cinder's
        form; any other shape raises :class:`~stackcore.exception.Invalid` naming
        ``existing_ref`` - :func:`source_name` does that check).

        Called by the manager, outside any transaction and changing nothing, when an admin asks
        to manage the object (``cloud.volume.manage``) - before any volume row exists, so that
        quota can count the size - and again just before :meth:`manage_existing` (an object
        whose size changed in between is not adopted). ``volume`` is the volume it would
        become (its ``id``, and its ``pool``: the pool of the host the admin named; its
        ``size`` is 0). Raises :class:`~stackcore.exception.NotFound` (kind ``backend
        volume``) when the backend has no such object; raising refuses the manage with
        nothing recorded."""
        raise exception.CapabilityNotSupported(type(self).__name__, "manage_existing")

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        """Capability ``manage_existing``: adopt the object ``existing_ref`` names as
        ``volume`` - rename it to the volume's own backend name (:attr:`Volume.name`, as
        Cinder's LVM, RBD and NFS drivers do), so that every other method finds it as it finds
        the volumes it made - and return a model update like :meth:`create_volume`. After it
        the volume behaves like any other: attach, snapshot, extend, delete.

        Called with the volume in ``managing`` and ``volume.size`` the size
        :meth:`manage_existing_get_size` gave, outside any transaction. An object smaller than
        ``volume.size`` (a size rounded up) may be grown to it.

        Refuse with :class:`~stackcore.exception.Invalid` an object the driver can tell is not
        free to adopt: one of its own snapshots or temporary objects, one in use (open,
        exported, with watchers). The driver cannot know which ``volume-<id>`` objects the
        database still has (an unmanaged volume's object keeps that name and is adoptable):
        the manager refuses those before calling. NotFound when there is no such object.

        Raising means the volume was not adopted: the manager records a fault and moves it to
        ``error_managing``, and calls nothing else (never :meth:`delete_volume`: the object
        is not the volume's). So a driver that raises must leave the object as it found it,
        under its old name (undo its own rename)."""
        raise exception.CapabilityNotSupported(type(self).__name__, "manage_existing")

    def unmanage(self, volume: Volume) -> None:
        """Capability ``manage_existing``: forget the volume without deleting anything: its
        object stays on the backend with its data and its name (Cinder keeps it too), and can
        be managed again. Called for an ``available`` or ``error`` volume without snapshots or
        attachments, after the manager removed its export (:meth:`remove_export`), outside any
        transaction; the manager then marks the volume deleted. Raising keeps the volume
        managed (the caller gets the error)."""
        raise exception.CapabilityNotSupported(type(self).__name__, "manage_existing")

    def list_manageable_volumes(self) -> list[dict[str, Any]]:
        """Capability ``manage_existing``: the objects of the backend that could become
        volumes, sorted by name: ``{"reference": {"source-name": <name>}, "size": <GiB
        rounded up>, "safe_to_manage": bool, "reason_not_safe": str | None}`` (plus an
        optional ``extra_info`` mapping). Not safe: what the driver can tell is in use, its
        own snapshots and temporary objects. Objects named ``volume-<id>`` are listed safe:
        the manager marks those the database still has as already managed. Called by the
        manager outside any transaction; changes nothing."""
        raise exception.CapabilityNotSupported(type(self).__name__, "manage_existing")

    @abc.abstractmethod
    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        """Write the image's data (converted to raw) onto an existing volume that is at least
        as large as the image's virtual size. Called with the volume in ``downloading``."""

    @abc.abstractmethod
    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        """Write the volume's data to ``image.path`` in ``image.disk_format``. The file does not
        exist yet; on failure leave no file."""


def _init_signature(cls: type) -> list[str]:
    from stackcore.plugins.contract import signature_problems

    init = cls.__init__  # type: ignore[misc]
    return [f"__init__(): {p}" for p in signature_problems(VolumeDriver.__init__, init)]


def _declared_data(cls: type) -> list[str]:
    from stackcore.volume.connection_info import PROTOCOL_TO_VOLUME_TYPE
    from stackcore.volume.stats import STORAGE_PROTOCOLS

    found = []
    protocol = getattr(cls, "STORAGE_PROTOCOL", "")
    supported = ", ".join(PROTOCOL_TO_VOLUME_TYPE)
    if protocol in STORAGE_PROTOCOLS and protocol not in PROTOCOL_TO_VOLUME_TYPE:
        # A Cinder protocol with no connection_info schema here: nothing could attach it.
        found.append(f"STORAGE_PROTOCOL {protocol!r} has no connection_info schema in this "
                     f"stackcore (supported: {supported})")
    elif protocol not in PROTOCOL_TO_VOLUME_TYPE:
        found.append(f"STORAGE_PROTOCOL {protocol!r} is not one of {supported}")
    if not isinstance(getattr(cls, "VENDOR_NAME", None), str) or not cls.VENDOR_NAME:  # type: ignore[attr-defined]
        found.append("VENDOR_NAME is missing or empty")
    points = getattr(cls, "FAULT_POINTS", {})
    if not isinstance(points, Mapping) or not all(
        isinstance(k, str) and isinstance(v, tuple) and all(isinstance(p, str) for p in v)
        for k, v in points.items()
    ):
        found.append("FAULT_POINTS must map operation names to tuples of checkpoint names")
    elif set(points) - set(REQUIRED) - set(OPTIONAL):
        unknown = sorted(set(points) - set(REQUIRED) - set(OPTIONAL))
        found.append(f"FAULT_POINTS names unknown operations {unknown}"
                     " (keys are contract methods)")
    return found


REQUIRED = (
    "do_setup",
    "check_for_setup_error",
    "get_volume_stats",
    "list_backend_objects",
    "create_volume",
    "delete_volume",
    "create_volume_from_snapshot",
    "create_cloned_volume",
    "extend_volume",
    "create_snapshot",
    "delete_snapshot",
    "create_export",
    "ensure_export",
    "remove_export",
    "initialize_connection",
    "terminate_connection",
    "copy_image_to_volume",
    "copy_volume_to_image",
)

#: Capability methods a driver may declare FAULT_POINTS for.
OPTIONAL = ("clone_image", "manage_existing")

CONTRACT = Contract(
    family="volume",
    base=VolumeDriver,
    required=REQUIRED,
    capabilities=CAPABILITIES,
    extra_checks=(_init_signature, _declared_data),
    version="1.2",  # 1.1: capability clone_image; 1.2: capability manage_existing
)
