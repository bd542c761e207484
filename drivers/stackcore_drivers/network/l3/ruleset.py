"""The nftables ruleset of one router: generated from the router's data, never from strings a
user typed (every value is an address or a device name this agent made, checked here again).

One table, ``ip stackcore-router``, per router namespace, replaced whole and atomically: the
text starts by declaring the table (so the delete never fails), deletes it and declares it
again, and ``nft -f -`` applies the file as one transaction - a packet sees the old rules or
the new ones, never none. Its chains:

* ``prerouting`` (nat, dstnat priority): ``ip daddr <floating> dnat to <fixed>`` per floating
  IP - the outside reaches a guest by its floating IP only;
* ``postrouting`` (nat, srcnat priority): per floating IP, traffic from its fixed address
  leaving by the gateway device gets the floating address as source (1:1), before the router's
  SNAT: traffic of the internal subnets leaving by the gateway device gets the gateway's
  address (only with ``enable_snat``). Traffic between internal subnets is routed untouched.
  **Hairpin**: a connection from inside to a floating IP (DNATed, and neither coming in nor
  leaving by the gateway device) gets the gateway's address as source: without it a guest
  reaching a neighbour on its own subnet by the neighbour's floating IP would get the reply
  straight from the neighbour's fixed address, which its connection does not know (Neutron's
  agent adds the same rule);
* ``forward`` (filter): a new connection coming in by the gateway device that was not
  DNATed (to a floating IP) is dropped - the outside reaches a guest by its floating IP only,
  even when an upstream router routes the internal subnets to this one. Replies of the
  guests' own connections are not new: they pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from stackcore import exception

TABLE = "stackcore-router"
FAMILY = "ip"


def _address(value: Any) -> str:
    address = ipaddress.ip_address(str(value))
    if address.version != 4:
        raise exception.Invalid("address", "is not an IPv4 address", value)
    return str(address)


def _network(value: Any) -> str:
    return str(ipaddress.ip_network(str(value), strict=False))


def _device(value: str) -> str:
    if not value or len(value) > 15 or not all(c.isalnum() or c in "-_" for c in value):
        raise exception.Invalid("device", "is not an interface name", value)
    return value


def build(gateway_device: str | None, gateway_ip: str | None, enable_snat: bool,
          internal_cidrs: Sequence[str], floating_ips: Sequence[Mapping[str, str]]) -> str:
    """The ruleset text (module doc). ``floating_ips``: ``{"floating_ip_address",
    "fixed_ip_address"}``; without a gateway there is no NAT at all (an empty table)."""
    lines = [f"table {FAMILY} {TABLE} {{}}", f"delete table {FAMILY} {TABLE}",
             f"table {FAMILY} {TABLE} {{"]
    dnat: list[str] = []
    snat: list[str] = []
    forward: list[str] = []
    if gateway_device is not None and gateway_ip is not None:
        device = _device(gateway_device)
        forward.append(f'iifname "{device}" ct state new ct status & dnat == 0 drop')
        for fip in sorted(floating_ips, key=lambda f: f["floating_ip_address"]):
            floating = _address(fip["floating_ip_address"])
            fixed = _address(fip["fixed_ip_address"])
            dnat.append(f"ip daddr {floating} dnat to {fixed}")
            snat.append(f'oifname "{device}" ip saddr {fixed} snat to {floating}')
        if floating_ips:
            snat.append(f'iifname != "{device}" oifname != "{device}" '
                        f"ct status & dnat == dnat snat to {_address(gateway_ip)}")
        cidrs = sorted({_network(c) for c in internal_cidrs})
        if enable_snat and cidrs:
            snat.append(f'oifname "{device}" ip saddr {{ {", ".join(cidrs)} }} '
                        f"snat to {_address(gateway_ip)}")
    lines += ["    chain prerouting {",
              "        type nat hook prerouting priority dstnat; policy accept;",
              *(f"        {rule}" for rule in dnat), "    }",
              "    chain postrouting {",
              "        type nat hook postrouting priority srcnat; policy accept;",
              *(f"        {rule}" for rule in snat), "    }",
              "    chain forward {",
              "        type filter hook forward priority filter; policy accept;",
              *(f"        {rule}" for rule in forward), "    }", "}"]
    return "\n".join(lines) + "\n"
