"""A bounded ICMP echo client (the machine has no ``ping``): ``python icmp_ping.py ADDRESS
[COUNT] [TIMEOUT]``. Sends COUNT echo requests, one per 0.2 s, waits at most TIMEOUT seconds
for each reply; prints ``N sent, M received`` and exits 0 only when every one was answered.
Run it inside the sending namespace (``ip netns exec NS python icmp_ping.py ...``).

COUNT 0 is a stream, until the process is killed: one identifier for every echo (one
conntrack connection, as a long-lived flow), and a line ``ok SEQ`` or ``lost SEQ`` per echo."""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main() -> int:
    address = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    ident = os.getpid() & 0xFFFF
    received = 0
    stream = count == 0
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        seq = 0
        while stream or seq < count:
            seq = seq % 0xFFFF + 1
            payload = b"stackcore-l2-test"
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
            sock.sendto(packet, (address, 0))
            deadline = time.monotonic() + timeout
            answered = False
            while not answered and (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                data, (source, _) = sock.recvfrom(2048)
                icmp = data[(data[0] & 0x0F) * 4:]
                kind, _, _, r_ident, r_seq = struct.unpack("!BBHHH", icmp[:8])
                answered = kind == 0 and source == address and (r_ident, r_seq) == (ident, seq)
            received += answered
            if stream:
                print(f"{'ok' if answered else 'lost'} {seq}", flush=True)
            time.sleep(0.2)
    print(f"{count} sent, {received} received")
    return 0 if received == count else 1


if __name__ == "__main__":
    sys.exit(main())
