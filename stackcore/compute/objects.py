"""What the compute manager hands a hypervisor driver: plain, immutable, serialisable values.

Drivers never see database rows. Each value here has a ``to_dict`` / ``from_dict`` pair so the
same objects travel over RPC unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any


class PowerState(enum.IntEnum):
    """The power state a driver reports for an instance (Nova's numbering)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


class RebootType(enum.StrEnum):
    SOFT = "SOFT"
    HARD = "HARD"


@dataclasses.dataclass(frozen=True)
class Flavor:
    """The size of an instance."""

    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Image:
    """An image a server boots from: the local file to read (``path``: the host's image-cache
    copy of an uploaded image, or a registered file) and its properties.

    ``location`` is the image's store location when it was uploaded to a store (e.g.
    ``rbd://<fsid>/<pool>/image-<id>/snap``), else ``""``: a driver that can use the store's
    copy directly (an RBD root disk cloned from it) may; ``path`` is there either way."""

    id: str
    name: str
    path: str
    disk_format: str
    properties: Mapping[str, str] = dataclasses.field(default_factory=dict)
    location: str = ""


@dataclasses.dataclass(frozen=True)
class Instance:
    """One server as the driver needs to know it.

    ``name`` is the user's display name and may contain any character (``<>&'"$;``...); a
    driver must escape it wherever it is written. ``uuid`` is the stable identity a driver keys
    its backend objects on.
    """

    uuid: str
    name: str
    host: str
    flavor: Flavor
    image: Image
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instance:
        values = dict(data)
        values["flavor"] = Flavor(**data["flavor"])
        values["image"] = Image(**data["image"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """What :meth:`HypervisorDriver.get_info` reports."""

    power_state: PowerState
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: booted from a rescue image (capability ``rescue``), its own root disk the second disk
    rescued: bool = False
