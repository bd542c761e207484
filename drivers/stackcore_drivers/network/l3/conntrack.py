"""Forget the connections of floating IPs that went away: ``python -m
stackcore_drivers.network.l3.conntrack ADDRESS...``, run by the agent inside the router's
namespace (``ip netns exec``: conntrack tables are per network namespace).

A connection established through a floating IP keeps its NAT mapping in conntrack after the
DNAT rule is gone: without this a disassociated floating IP would still reach the guest on
the existing flows. Every entry whose original destination (inbound, DNAT) or reply
destination (outbound, SNAT) is one of the addresses is deleted over netlink (pyroute2; the
machine needs no ``conntrack`` tool). Prints the number of entries deleted.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from typing import Any


def _tuple(attr: Any) -> Any:
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    ip = attr.get_attr("CTA_TUPLE_IP")
    proto = attr.get_attr("CTA_TUPLE_PROTO")
    return NFCTAttrTuple(
        saddr=ip.get_attr("CTA_IP_V4_SRC"), daddr=ip.get_attr("CTA_IP_V4_DST"),
        proto=proto.get_attr("CTA_PROTO_NUM"), sport=proto.get_attr("CTA_PROTO_SRC_PORT"),
        dport=proto.get_attr("CTA_PROTO_DST_PORT"),
        icmp_id=proto.get_attr("CTA_PROTO_ICMP_ID"),
        icmp_type=proto.get_attr("CTA_PROTO_ICMP_TYPE"),
        icmp_code=proto.get_attr("CTA_PROTO_ICMP_CODE"))


def flush(addresses: Sequence[str]) -> int:
    """Delete the entries of ``addresses`` (module doc) in this namespace; how many."""
    from pyroute2 import NFCTSocket

    wanted = {str(ipaddress.IPv4Address(a)) for a in addresses}
    deleted = 0
    with NFCTSocket() as ct:
        for entry in list(ct.dump()):
            orig, reply = entry.get_attr("CTA_TUPLE_ORIG"), entry.get_attr("CTA_TUPLE_REPLY")
            if orig is None or reply is None or orig.get_attr("CTA_TUPLE_IP") is None:
                continue
            if {orig.get_attr("CTA_TUPLE_IP").get_attr("CTA_IP_V4_DST"),
                    reply.get_attr("CTA_TUPLE_IP").get_attr("CTA_IP_V4_DST")} & wanted:
                try:
                    ct.entry("del", tuple_orig=_tuple(orig))
                    deleted += 1
                except OSError:   # gone meanwhile (timed out)
                    pass
    return deleted


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    print(flush(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
