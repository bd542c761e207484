"""The volume data path as a hypervisor sees it: open a ``connection_info`` with qemu.

The volume suite never takes a driver's word for sizes and data: it opens the
``connection_info`` the driver returned with ``qemu-io`` / ``qemu-img`` (QEMU's own clients for
local files, ``nfs://`` (libnfs), ``rbd:`` (librbd) and ``iscsi://`` (libiscsi)), exactly as a
hypervisor would attach it. System tools needed: ``qemu-img`` and ``qemu-io`` (Debian/Ubuntu
``qemu-utils``; ``qemu-block-extra`` for nfs/rbd/iscsi).

Every failure message says what was expected and what was found (the bytes actually read, the
size actually seen, qemu's own error).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from stackcore.testing.check import KitError

MiB = 1024 * 1024
TIMEOUT = 300

#: ``driver_volume_type`` -> the ``data`` keys the suite reads to open such a volume (a
#: connection_info lacking one cannot be attached by a hypervisor either).
OPENED_WITH: Mapping[str, tuple[str, ...]] = {
    "local": ("device_path",),
    "nfs": ("export", "name", "format"),
    "rbd": ("name", "hosts", "ports", "auth_enabled"),
    "iscsi": ("target_portal", "target_iqn", "target_lun"),
}


@dataclasses.dataclass
class Opened:
    """qemu arguments for one attached volume (a secret file for CHAP, removed after use)."""

    args: list[str]
    secret_file: str | None = None


@contextmanager
def opened(info: Mapping[str, Any]) -> Iterator[Opened]:
    """qemu-io / qemu-img arguments opening the volume ``info`` describes."""
    kind, data = info.get("driver_volume_type"), info.get("data") or {}
    missing = [k for k in OPENED_WITH.get(str(kind), ()) if k not in data]
    if kind not in OPENED_WITH or missing:
        raise KitError(
            f"opening the volume: expected a connection_info of type "
            f"{' / '.join(OPENED_WITH)} with its keys, got type {kind!r}"
            + (f" without {', '.join(missing)}" if missing else ""))
    secret = None
    if kind == "local" and "offset" in data:  # a range of a device (raw backend space)
        path = data["device_path"]  # a file, or a block device (an LVM physical volume)
        protocol = "host_device" if _is_block_device(path) else "file"
        target = Opened(["--image-opts", f"driver=raw,offset={int(data['offset'])},"
                         f"size={int(data['size'])},file.driver={protocol},"
                         f"file.filename={path}"])
    elif kind == "local":
        target = Opened(["-f", "raw", data["device_path"]])
    elif kind == "nfs":
        host, _, export = data["export"].partition(":")
        target = Opened(["-f", data["format"], f"nfs://{host}{export.rstrip('/')}/{data['name']}"])
    elif kind == "rbd":
        monitors = ";".join(f"{h}\\:{p}" for h, p in zip(data["hosts"], data["ports"],
                                                        strict=True))
        spec = f"rbd:{data['name']}:mon_host={monitors}"
        if not data["auth_enabled"]:
            spec += ":auth_supported=none"
        target = Opened(["-f", "raw", spec])
    else:
        opts = (f"driver=iscsi,transport=tcp,portal={data['target_portal']},"
                f"target={data['target_iqn']},lun={data['target_lun']}")
        if data.get("auth_method") == "CHAP":
            fd, secret = tempfile.mkstemp(prefix="chap-")
            with os.fdopen(fd, "w") as handle:
                handle.write(data["auth_password"])
            opts += f",user={data['auth_username']},password-secret=chap0"
            target = Opened(["--object", f"secret,id=chap0,file={secret}", "--image-opts", opts],
                            secret)
        else:
            target = Opened(["--image-opts", opts])
    try:
        yield target
    finally:
        if secret:
            os.unlink(secret)


def _is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False  # qemu says what is wrong with it


def run(cmd: list[str], what: str) -> str:
    """Run a qemu tool; a non-zero exit (or a reported failure) fails ``what`` with qemu's
    output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    out = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "failed" in out.lower() or "error" in out.lower():
        raise KitError(f"{what}: expected {cmd[0]} to succeed, got exit status "
                       f"{result.returncode}: {out[-600:]}")
    return out


def _qemu_io(info: Mapping[str, Any], command: str, what: str, shared: bool = False) -> str:
    with opened(info) as target:
        args = target.args
        extra = ["-r", "-U"] if shared else []  # read-only, next to a process holding it
        if args[0] == "--object":
            return run(["qemu-io", *extra, *args[:2], "-c", command, *args[2:]], what)
        return run(["qemu-io", *extra, "-c", command, *args], what)


def write_pattern(info: Mapping[str, Any], offset: int, pattern: int, length: int = MiB,
                  what: str = "") -> None:
    _qemu_io(info, f"write -P {pattern:#x} {offset} {length}",
             what or f"writing {pattern:#04x} at offset {offset} through the connection")


def read_bytes(info: Mapping[str, Any], offset: int, length: int = 16,
               what: str = "", shared: bool = False) -> bytes:
    """The bytes at ``offset`` as the volume's reader sees them."""
    out = _qemu_io(info, f"read -v {offset} {length}",
                   what or f"reading offset {offset} through the connection", shared)
    found = bytearray()
    for line in out.splitlines():
        head, sep, rest = line.partition(":  ")
        if sep and len(head) == 8 and all(c in "0123456789abcdef" for c in head):
            found.extend(bytes.fromhex(rest[:48].strip()))
    return bytes(found[:length])


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data[:16]) + (" ..." if len(data) > 16 else "")


def expect_pattern(info: Mapping[str, Any], offset: int, pattern: int, what: str,
                   length: int = MiB, shared: bool = False) -> None:
    """``length`` bytes of ``pattern`` at ``offset``; else name the bytes actually there."""
    try:
        _qemu_io(info, f"read -P {pattern:#x} {offset} {length}", what, shared)
    except KitError as err:
        if "Pattern verification failed" not in str(err):
            raise
        got = read_bytes(info, offset, 16, what, shared)
        raise KitError(f"{what}: expected {length} bytes of {pattern:#04x} at offset {offset}, "
                       f"got {_hex(got)} (first 16 bytes there)") from None


def expect_not_readable_as(info: Mapping[str, Any], offset: int, pattern: int,
                           what: str) -> None:
    """The old data must be gone: opening fails, or reading gives anything but ``pattern``."""
    try:
        _qemu_io(info, f"read -P {pattern:#x} {offset} {MiB}", what)
    except KitError:
        return  # unreadable, or other data: gone
    raise KitError(f"{what}: expected the data ({pattern:#04x} at offset {offset}) to be gone, "
                   "got it read back through the old connection_info")


def virtual_size(info: Mapping[str, Any], what: str, shared: bool = False) -> int:
    """The size the reader sees, in bytes."""
    with opened(info) as target:
        extra = ["-U"] if shared else []
        if target.args[0] in ("--object", "--image-opts"):
            out = run(["qemu-img", "info", *extra, "--output=json", *target.args], what)
        else:
            fmt, path = target.args[1], target.args[2]
            out = run(["qemu-img", "info", *extra, "--output=json", "-f", fmt, path], what)
    return int(json.loads(out[out.index("{"):])["virtual-size"])


def allocated_bytes(info: Mapping[str, Any], what: str) -> tuple[int, bool]:
    """(bytes the backend has allocated to the volume, whether that is known for sure).

    qemu's ``actual-size`` (files, NFS) is exact. Otherwise the data extents of ``qemu-img
    map`` count (rbd with its object map, iSCSI with LBA status): a hole there is certain,
    "all data" may only mean the backend cannot tell."""
    with opened(info) as target:
        args = (target.args if target.args[0] in ("--object", "--image-opts")
                else ["-f", target.args[1], target.args[2]])
        out = run(["qemu-img", "info", "--output=json", *args], what)
        actual = json.loads(out[out.index("{"):]).get("actual-size")
        if actual is not None:
            return int(actual), True
        out = run(["qemu-img", "map", "--output=json", *args], what)
    extents = json.loads(out[out.index("["):])
    data = sum(int(e["length"]) for e in extents if e.get("data"))
    return data, any(not e.get("data") for e in extents)


def expect_size(info: Mapping[str, Any], gib: int, what: str, shared: bool = False) -> None:
    size = virtual_size(info, what, shared)
    if size != gib * 1024**3:
        raise KitError(f"{what}: expected {gib} GiB ({gib * 1024**3} bytes) seen by a reader, "
                       f"got {size} bytes ({size / 1024**3:g} GiB)")


class Holder:
    """A qemu process keeping a volume open read-write through its connection, as a running
    guest does (``qemu-io`` reading its commands from a pipe)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self._ctx = opened(info)
        target = self._ctx.__enter__()
        args = target.args
        cmd = (["qemu-io", *args[:2], *args[2:]] if args[0] == "--object"
               else ["qemu-io", *args])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def close(self, what: str) -> None:
        try:
            out, _ = self.proc.communicate("read 0 512\nquit\n", timeout=TIMEOUT)
        finally:
            self._ctx.__exit__(None, None, None)
        if self.proc.returncode != 0 or "failed" in out.lower() or "error" in out.lower():
            raise KitError(f"{what}: expected the process holding the volume open to keep "
                           f"working, got exit status {self.proc.returncode}: {out[-600:]}")
