"""What the volume manager hands a volume driver: plain, immutable, serialisable values.

Drivers never see database rows. Backend objects are named from these values
(:attr:`Volume.name` = ``volume-<id>``, :attr:`Snapshot.name` = ``snapshot-<id>``, Cinder's
templates), so a driver can always find what it made from the id alone - which is what makes
deletes idempotent and start-up reconciliation possible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

GiB = 1024**3

VOLUME_NAME_TEMPLATE = "volume-%s"
SNAPSHOT_NAME_TEMPLATE = "snapshot-%s"


@dataclasses.dataclass(frozen=True)
class Volume:
    """One volume as its driver needs to know it.

    ``size`` is in GiB. ``provider_location`` / ``provider_auth`` / ``driver_data`` are what the
    driver itself returned earlier (model updates from create/export), stored by the manager and
    handed back unchanged. ``extra_specs`` are the volume type's extra specs.
    """

    id: str
    size: int
    display_name: str = ""
    extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    provider_location: str | None = None
    provider_auth: str | None = None
    driver_data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    multiattach: bool = False
    pool: str | None = None  # the pool placement chose (a pool_name from the driver's stats)
    #: whether a host has the volume attached now (a hypervisor may hold it open): a driver
    #: must not rewrite what such a reader caches (a qcow2 header, its L1 table) behind it
    attached: bool = False

    @property
    def name(self) -> str:
        """The backend object name, ``volume-<id>``."""
        return VOLUME_NAME_TEMPLATE % self.id

    @property
    def size_bytes(self) -> int:
        return self.size * GiB

    @property
    def thin(self) -> bool:
        """Whether the volume type asks for thin provisioning (the default, as in Cinder)."""
        return self.extra_specs.get("provisioning:type", "thin") != "thick"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One snapshot. ``volume`` is its source volume as it was when the snapshot was taken
    (``volume_size`` is that size in GiB)."""

    id: str
    volume: Volume
    volume_size: int
    provider_location: str | None = None
    driver_data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The backend object name, ``snapshot-<id>``."""
        return SNAPSHOT_NAME_TEMPLATE % self.id

    @property
    def volume_id(self) -> str:
        return self.volume.id

    @property
    def volume_name(self) -> str:
        return self.volume.name


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """An image of the compute image store, as a local file: read by
    ``copy_image_to_volume``, written by ``copy_volume_to_image``. ``disk_format`` is ``raw`` or
    ``qcow2`` (what qemu-img can convert)."""

    id: str
    path: str
    disk_format: str


@dataclasses.dataclass(frozen=True)
class StoreImage:
    """An image uploaded into an image store, as ``clone_image`` is offered it: where the
    store keeps it (``store``, the store's entry-point name; ``location``, the store's own
    location string, e.g. ``rbd://<fsid>/<pool>/image-<id>/snap``) and what the image record
    says of its bytes. ``size`` is the stored bytes' size, ``virtual_size`` the disk size the
    format inspection found (bytes; for a raw image both are the same)."""

    id: str
    store: str
    location: str
    disk_format: str
    size: int
    virtual_size: int
