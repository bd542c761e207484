"""The metadata trees, built by pure functions from what the service looked up (no database,
no HTTP here): Nova's OpenStack tree (``/openstack/<version>/meta_data.json``, ``user_data``,
``network_data.json``, ``vendor_data.json``) and its EC2 tree (``/<version>/meta-data/...``,
``/<version>/user-data``).

A tree is nested mappings; a leaf is ``bytes`` (served as is), text, or a JSON document
(:class:`Json`). :func:`resolve` walks a request path through it the way Nova answers: a
subtree is a directory listing, one name per line, subtrees with a trailing ``/`` (a subtree
may carry its own listing name in ``_name``: EC2's ``public-keys/0=mykey``).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Nova's OpenStack metadata versions (``latest`` is the newest)
OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                      "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14")
#: the first versions with vendor_data.json and network_data.json
VENDOR_DATA_SINCE = "2013-10-17"
NETWORK_DATA_SINCE = "2015-10-15"
#: EC2 metadata versions Nova serves (``latest`` too)
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")

_HOSTNAME_BAD = re.compile(r"[^a-z0-9.-]+")


@dataclasses.dataclass(frozen=True)
class Json:
    """A leaf served as ``application/json``."""

    value: Any


@dataclasses.dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[Mapping[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class PortAddress:
    ip_address: str
    subnet: Subnet


@dataclasses.dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    mac_address: str
    mtu: int
    vif_type: str
    addresses: tuple[PortAddress, ...]


@dataclasses.dataclass(frozen=True)
class Instance:
    """What the trees say about one server."""

    uuid: str
    name: str
    project_id: str
    availability_zone: str | None
    metadata: Mapping[str, str]
    flavor_name: str
    image_id: str
    key_name: str | None
    key_data: str | None
    #: decoded user data (None: the server has none)
    user_data: bytes | None
    ports: tuple[Port, ...] = ()
    security_groups: tuple[str, ...] = ()
    launch_index: int = 0


def hostname(name: str, uuid: str) -> str:
    """The guest's host name from its display name, as Nova sanitises it: lower case, runs of
    other characters become ``-``, at most 63 characters; ``server-<uuid>`` if nothing is
    left."""
    text = _HOSTNAME_BAD.sub("-", name.lower()).strip("-.")[:63].rstrip("-.")
    return text or f"server-{uuid}"


def meta_data(instance: Instance, random_seed: bytes) -> dict[str, Any]:
    """``meta_data.json``."""
    found: dict[str, Any] = {
        "uuid": instance.uuid,
        "name": instance.name,
        "hostname": hostname(instance.name, instance.uuid),
        "availability_zone": instance.availability_zone or "nova",
        "project_id": instance.project_id,
        "launch_index": instance.launch_index,
        "meta": dict(instance.metadata),
        "random_seed": base64.b64encode(random_seed).decode("ascii"),
        "devices": [],
    }
    if instance.key_name and instance.key_data:
        found["public_keys"] = {instance.key_name: instance.key_data}
        found["keys"] = [{"name": instance.key_name, "type": "ssh",
                          "data": instance.key_data}]
    return found


def _mask(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(network.netmask)


def _route(destination: str, nexthop: str) -> dict[str, str]:
    network = ipaddress.ip_network(destination, strict=False)
    return {"network": str(network.network_address), "netmask": _mask(network),
            "gateway": nexthop}


def network_data(ports: Sequence[Port]) -> dict[str, Any]:
    """``network_data.json``: one link per port (MAC, MTU), one network per address - type
    ``ipv4_dhcp`` (``ipv6_dhcp``) on a DHCP-enabled subnet, else ``ipv4`` (``ipv6``) with the
    address, netmask and routes (default via the gateway, then the subnet's host routes) -
    and the subnets' DNS servers as services."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, str]] = []
    for port in ports:
        link_id = ("tap" + port.id)[:14]
        links.append({"id": link_id, "vif_id": port.id, "type": port.vif_type or "phy",
                      "mtu": port.mtu, "ethernet_mac_address": port.mac_address})
        for address in port.addresses:
            subnet = address.subnet
            family = f"ipv{subnet.ip_version}"
            entry: dict[str, Any] = {"id": f"network{len(networks)}", "link": link_id,
                                     "network_id": port.network_id}
            dns = [{"type": "dns", "address": a} for a in subnet.dns_nameservers]
            if subnet.enable_dhcp:
                entry["type"] = f"{family}_dhcp"
            else:
                cidr = ipaddress.ip_network(subnet.cidr, strict=False)
                default = "0.0.0.0/0" if subnet.ip_version == 4 else "::/0"
                routes = ([_route(default, subnet.gateway_ip)] if subnet.gateway_ip else [])
                routes += [_route(r["destination"], r["nexthop"]) for r in subnet.host_routes]
                entry.update(type=family, ip_address=address.ip_address,
                             netmask=_mask(cidr), routes=routes)
            entry["services"] = dns
            networks.append(entry)
            services += [d for d in dns if d not in services]
    return {"links": links, "networks": networks, "services": services}


def _local_ipv4(instance: Instance) -> str:
    for port in instance.ports:
        for address in port.addresses:
            if address.subnet.ip_version == 4:
                return address.ip_address
    return ""


def openstack_version(instance: Instance, version: str, random_seed: bytes,
                      vendor_data: Mapping[str, Any]) -> dict[str, Any]:
    """The files of ``/openstack/<version>/`` for ``instance`` (``latest``: every file)."""
    newest = version == "latest"
    files: dict[str, Any] = {"meta_data.json": Json(meta_data(instance, random_seed))}
    if instance.user_data is not None:
        files["user_data"] = instance.user_data
    if newest or version >= VENDOR_DATA_SINCE:
        files["vendor_data.json"] = Json(dict(vendor_data))
    if newest or version >= NETWORK_DATA_SINCE:
        files["network_data.json"] = Json(network_data(instance.ports))
    return files


def ec2_meta_data(instance: Instance) -> dict[str, Any]:
    """``/<version>/meta-data/``: Nova's EC2 tree (ids are stackcore's uuids)."""
    name = hostname(instance.name, instance.uuid)
    tree: dict[str, Any] = {
        "ami-id": instance.image_id,
        "ami-launch-index": str(instance.launch_index),
        "ami-manifest-path": "FIXME",
        "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        "hostname": name,
        "instance-action": "none",
        "instance-id": instance.uuid,
        "instance-type": instance.flavor_name,
        "local-hostname": name,
        "local-ipv4": _local_ipv4(instance),
        "placement": {"availability-zone": instance.availability_zone or "nova"},
        "public-hostname": name,
        "public-ipv4": "",
        "reservation-id": "",
        "security-groups": "\n".join(instance.security_groups),
    }
    if instance.key_name and instance.key_data:
        tree["public-keys"] = {"0": {"_name": f"0={instance.key_name}",
                                     "openssh-key": instance.key_data}}
    return tree


def tree(instance: Instance, random_seed: bytes, vendor_data: Mapping[str, Any]
         ) -> dict[str, Any]:
    """The whole tree of one server, from ``/``."""
    ec2: dict[str, Any] = {"meta-data": ec2_meta_data(instance)}
    if instance.user_data is not None:
        ec2["user-data"] = instance.user_data
    # Version listings name the versions without a trailing "/", as Nova's do.
    root: dict[str, Any] = {"_plain": True}
    root.update({version: ec2 for version in (*EC2_VERSIONS, "latest")})
    openstack: dict[str, Any] = {"_plain": True}
    openstack.update({version: openstack_version(instance, version, random_seed, vendor_data)
                      for version in (*OPENSTACK_VERSIONS, "latest")})
    root["openstack"] = openstack
    return root


def listing(node: Mapping[str, Any]) -> str:
    """A directory listing as Nova writes it: one name per line, subtrees with a trailing
    ``/`` (or their own ``_name``; in a version listing, ``_plain``, without it)."""
    lines = []
    for key, value in node.items():
        if key.startswith("_"):
            continue
        if isinstance(value, Mapping):
            plain = node.get("_plain") or "_name" in value
            lines.append(value.get("_name", key) if plain else f"{key}/")
        else:
            lines.append(key)
    return "\n".join(lines)


def resolve(root: Mapping[str, Any], path: str) -> tuple[str, bytes] | None:
    """``(content type, body)`` for a request path, None if there is nothing there. A
    trailing ``/`` is optional, as in Nova; an EC2 listing name (``0=mykey``) also reaches
    its subtree."""
    node: Any = root
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Mapping):
            return None
        found = node.get(part) if not part.startswith("_") else None
        if found is None and "=" in part:
            found = node.get(part.split("=", 1)[0])
        if found is None:
            return None
        node = found
    if isinstance(node, Mapping):
        return "text/plain; charset=utf-8", listing(node).encode("utf-8")
    if isinstance(node, Json):
        return "application/json", json.dumps(node.value).encode("utf-8")
    if isinstance(node, bytes):
        return "application/octet-stream", node
    return "text/plain; charset=utf-8", str(node).encode("utf-8")
