"""What a placement request asks for, as the filters and weighers read it.

Requests travel over RPC as JSON dicts (built by ``cloud.compute.create_server`` and
``cloud.volume.create``); :meth:`ComputeRequest.from_dict` / :meth:`VolumeRequest.from_dict`
turn them into frozen objects once per request, so no filter parses a dict per host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from stackcore import exception

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


@dataclasses.dataclass(frozen=True)
class ServerGroupInfo:
    """A server group as the scheduler sees it at request time."""

    id: str
    policy: str
    #: hosts already holding members of the group (the server being placed excluded) -> count
    hosts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: anti-affinity: members allowed per host (Nova's ``max_server_per_host`` rule)
    max_server_per_host: int = 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerGroupInfo:
        policy = str(data.get("policy", ""))
        if policy not in POLICIES:
            raise exception.Invalid("server_group.policy", f"must be one of {POLICIES}", policy)
        return cls(
            id=str(data.get("id", "")),
            policy=policy,
            hosts={str(h): int(n) for h, n in dict(data.get("hosts") or {}).items()},
            max_server_per_host=int(data.get("max_server_per_host", 1)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "policy": self.policy, "hosts": dict(self.hosts),
                "max_server_per_host": self.max_server_per_host}


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise exception.Invalid(key, "must be an integer >= 0", value)
    return value


def _str_map(data: Mapping[str, Any], key: str) -> dict[str, str]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise exception.Invalid(key, "must be a mapping", value)
    return {str(k): str(v) for k, v in value.items()}


@dataclasses.dataclass(frozen=True)
class ComputeRequest:
    """One server to place: the flavor's resources, where, and what the image needs."""

    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    image_properties: Mapping[str, str] = dataclasses.field(default_factory=dict)
    server_group: ServerGroupInfo | None = None
    exclude_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComputeRequest:
        group = data.get("server_group")
        return cls(
            vcpus=_int(data, "vcpus"),
            memory_mb=_int(data, "memory_mb"),
            disk_gb=_int(data, "disk_gb"),
            availability_zone=data.get("availability_zone") or None,
            extra_specs=_str_map(data, "extra_specs"),
            image_properties=_str_map(data, "image_properties"),
            server_group=ServerGroupInfo.from_dict(group) if group else None,
            exclude_hosts=frozenset(str(h) for h in data.get("exclude_hosts") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "disk_gb": self.disk_gb,
            "availability_zone": self.availability_zone,
            "extra_specs": dict(self.extra_specs),
            "image_properties": dict(self.image_properties),
            "server_group": self.server_group.to_dict() if self.server_group else None,
            "exclude_hosts": sorted(self.exclude_hosts),
        }


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
            size=_int(data, "size"),
            extra_specs=_str_map(data, "extra_specs"),
            availability_zone=data.get("availability_zone") or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "extra_specs": dict(self.extra_specs),
                "availability_zone": self.availability_zone}
