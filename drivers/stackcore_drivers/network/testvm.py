"""Test VMs for the agents' conformance hooks: a network namespace whose ``eth0`` is one end of
a veth pair, the other end being the port's device on the agent's host (``tap<port id>``),
with the port's MAC and first fixed IP - what a booted guest looks like to the data path.

Only the L2 agent kit uses it (``plug_test_device`` / ``test_ping``); every command is an
argument list, and the echo is this module's own bounded ICMP client run inside the VM's
namespace (``python -m stackcore_drivers.network.testvm ADDRESS``): the machine has no
``ping``.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence

from stackcore import exception

TIMEOUT = 30


def vm_name(port_id: str) -> str:
    return f"sc-vm-{port_id[:12]}"


def _run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT,
                            check=False)
    if check and result.returncode != 0:
        raise exception.DriverError(f"{' '.join(args[:4])}: {result.stderr.strip()}")
    return result


def host_prefix(namespace: str | None = None, pid: int | None = None) -> list[str]:
    """The command prefix running a command in the host side's namespace: a named one, the
    namespace of process ``pid`` (ovs-vswitchd's), or this one."""
    if namespace:
        return ["ip", "netns", "exec", namespace]
    if pid:
        return ["nsenter", f"--net=/proc/{pid}/ns/net"]
    return []


def make_vm(port_id: str, device: str, mac: str, address: str | None,
            namespace: str | None = None, pid: int | None = None) -> str:
    """A VM namespace for ``port_id`` cabled to ``device`` (created in the host side's
    namespace, up); returns the VM's namespace. Idempotent."""
    vm = vm_name(port_id)
    if vm not in _run(["ip", "netns", "list"]).stdout.split():
        _run(["ip", "netns", "add", vm])
    prefix = host_prefix(namespace, pid)
    if _run([*prefix, "ip", "link", "show", device], check=False).returncode != 0:
        target = namespace or (str(pid) if pid else str(os.getpid()))
        _run(["ip", "link", "add", device, "netns", target, "type", "veth", "peer", "name",
              "eth0", "netns", vm, "address", mac])
    _run([*prefix, "ip", "link", "set", device, "up"])
    _run(["ip", "-n", vm, "link", "set", "lo", "up"])
    _run(["ip", "-n", vm, "link", "set", "eth0", "up"])
    if address:
        _run(["ip", "-n", vm, "addr", "replace", f"{address}/32", "dev", "eth0"])
        # every destination on the link itself: the test network's peers are all on-link
        _run(["ip", "-n", vm, "route", "replace", "default", "dev", "eth0"])
    return vm


def remove_vm(port_id: str, device: str, namespace: str | None = None,
              pid: int | None = None) -> None:
    """Delete the VM namespace (its veth goes with it) and the host end if left; idempotent."""
    _run(["ip", "netns", "delete", vm_name(port_id)], check=False)
    _run([*host_prefix(namespace, pid), "ip", "link", "del", device], check=False)


def ping(port_id: str, address: str) -> bool:
    """One echo from the VM of ``port_id`` to ``address``, answered within a second."""
    result = _run(["ip", "netns", "exec", vm_name(port_id), sys.executable, "-m",
                   "stackcore_drivers.network.testvm", address], check=False)
    return result.returncode == 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(address: str, timeout: float = 1.0) -> bool:
    ident, payload = os.getpid() & 0xFFFF, b"stackcore-kit"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.sendto(packet, (address, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return False
            data, (source, _) = sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4:]
            kind, _, _, r_ident, _ = struct.unpack("!BBHHH", icmp[:8])
            if kind == 0 and source == address and r_ident == ident:
                return True
    return False


if __name__ == "__main__":
    sys.exit(0 if _echo(sys.argv[1]) else 1)
