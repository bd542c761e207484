"""A compute placement request, as the compute filters and weighers read it.

Built by :func:`build` (the one place a request is made from a flavor, an image and the
server's options: ``create_server``, ``explain_placement`` and a reschedule all call it),
carried over RPC as a JSON dict, and read once per request by
:meth:`ComputeRequest.from_dict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from stackcore import exception
from stackcore.scheduler.request import int_field, str_map_field

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
    #: the only host the request may be placed on, still through the filters (an evacuation
    #: to a named host, as Nova's non-forced ``host``); None: any host
    requested_host: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComputeRequest:
        group = data.get("server_group")
        return cls(
            vcpus=int_field(data, "vcpus"),
            memory_mb=int_field(data, "memory_mb"),
            disk_gb=int_field(data, "disk_gb"),
            availability_zone=data.get("availability_zone") or None,
            extra_specs=str_map_field(data, "extra_specs"),
            image_properties=str_map_field(data, "image_properties"),
            server_group=ServerGroupInfo.from_dict(group) if group else None,
            exclude_hosts=frozenset(str(h) for h in data.get("exclude_hosts") or ()),
            requested_host=str(data["requested_host"]) if data.get("requested_host") else None,
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
            "requested_host": self.requested_host,
        }


def build(flavor: Mapping[str, Any], image_properties: Mapping[str, str] | None = None, *,
          availability_zone: str | None = None, server_group: str | None = None,
          exclude_hosts: Iterable[str] = (), requested_host: str | None = None
          ) -> dict[str, Any]:
    """The request dict for a server of ``flavor`` (``vcpus``, ``ram_mb``, ``disk_gb``,
    ``extra_specs``) booting an image with ``image_properties``; ``requested_host``: the only
    host it may go to (a scheduler honours it from API 1.4 on: ask for that version)."""
    request: dict[str, Any] = {
        "vcpus": flavor["vcpus"],
        "memory_mb": flavor["ram_mb"],
        "disk_gb": flavor["disk_gb"],
        "availability_zone": availability_zone,
        "extra_specs": dict(flavor.get("extra_specs") or {}),
        "image_properties": dict(image_properties or {}),
        "server_group": {"id": server_group} if server_group else None,
    }
    excluded = sorted(exclude_hosts)
    if excluded:
        request["exclude_hosts"] = excluded
    if requested_host is not None:
        request["requested_host"] = requested_host
    return request
