"""Rules for the names of kernel network devices and OVS bridges/ports the agents create.

With OVS's userspace (netdev) datapath every bridge and internal port is also a kernel tap
device, so OVS names obey the kernel's limit too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping

from stackcore import exception

#: The kernel's IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_DEVICE_NAME = 15

_DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def device_name(field: str, value: object) -> str:
    """A kernel network device name: 1..15 characters of letters, digits and ``_.-``."""
    if not isinstance(value, str) or not value:
        raise exception.Invalid(field, "must be a non-empty device name", value)
    if len(value) > MAX_DEVICE_NAME:
        raise exception.Invalid(
            field, f"{value!r} is {len(value)} characters long; the kernel's limit for a "
            f"device name is {MAX_DEVICE_NAME}", value)
    if not _DEVICE_NAME.match(value) or value in (".", ".."):
        raise exception.Invalid(field, f"{value!r} may contain only letters, digits and _.-",
                                value)
    return value


def physnet_map(option: str, mapping: Mapping[str, str],
                check_value: bool = True) -> dict[str, str]:
    """Validate a ``physnet:device`` option (``bridge_mappings`` ...): every device name is a
    valid kernel name and no device serves two physical networks. Raises ConfigError naming the
    option and the culprit."""
    result: dict[str, str] = {}
    seen: dict[str, str] = {}
    for physnet, device in mapping.items():
        if not physnet:
            raise exception.ConfigError(f"{option}: empty physical network name")
        if check_value:
            try:
                device_name(f"{option}[{physnet}]", device)
            except exception.Invalid as err:
                raise exception.ConfigError(f"{option}: {err}") from None
        if device in seen:
            raise exception.ConfigError(
                f"{option}: {device!r} is mapped to both {seen[device]!r} and {physnet!r}")
        seen[device] = physnet
        result[physnet] = device
    return result


def ip_address(option: str, value: str) -> str:
    """An IPv4/IPv6 address in canonical text form (ConfigError otherwise)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise exception.ConfigError(f"{option}: {value!r} is not an IP address") from None


def tunnel_port_name(network_type: str, remote_ip: str) -> str:
    """Neutron's tunnel port name: ``<type>-<8 hex digits of the IPv4 address>``, or a hash of
    an IPv6 address, always within the kernel limit."""
    address = ipaddress.ip_address(remote_ip)
    if address.version == 4:
        suffix = f"{int(address):08x}"
    else:
        suffix = hashlib.blake2b(address.packed, digest_size=4).hexdigest()
    return f"{network_type}-{suffix}"[:MAX_DEVICE_NAME]


def unique(values: Iterable[str]) -> list[str]:
    return sorted(set(values))
