"""A volume placement request, as the volume filters and weighers read it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from stackcore.scheduler.request import int_field, str_map_field


@dataclasses.dataclass(frozen=True)
class VolumeRequest:
    """One volume to place: its size and the extra specs of its volume type."""

    size: int
    extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    availability_zone: str | None = None

    @property
    def thin(self) -> bool:
        """Cinder's rule: thin unless the volume type says ``provisioning:type = thick``."""
        return self.extra_specs.get("provisioning:type", "thin") != "thick"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VolumeRequest:
        return cls(
            size=int_field(data, "size"),
            extra_specs=str_map_field(data, "extra_specs"),
            availability_zone=data.get("availability_zone") or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "extra_specs": dict(self.extra_specs),
                "availability_zone": self.availability_zone}
