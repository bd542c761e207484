"""Run inside the guest by tests/guest/test_host_attach.py: the libvirt driver's host-side
attach (os-brick) on one volume, one step per call, JSON on stdout.

    attach_helper.py connect CONNECTION_INFO_JSON MOUNT_BASE
    attach_helper.py disconnect CONNECTION_INFO_JSON DEVICE_INFO_JSON MOUNT_BASE
    attach_helper.py write PATH OFFSET BYTE          (1 MiB of BYTE at OFFSET, O_DIRECT)
    attach_helper.py properties MOUNT_BASE

SCAN_ATTEMPTS in the environment: os-brick's device_scan_attempts (default 3).
"""

from __future__ import annotations

import json
import mmap
import os
import sys

from stackcore_drivers.libvirt.host_attach import HostAttach

from stackcore import exception

MiB = 1024 * 1024


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "write":
        path, offset, byte = argv[1], int(argv[2]), int(argv[3], 0)
        buf = mmap.mmap(-1, MiB)  # page-aligned, as O_DIRECT needs
        buf.write(bytes([byte]) * MiB)
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        try:
            os.pwrite(fd, buf, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        print(json.dumps({"written": MiB}))
        return 0
    attach = HostAttach(argv[-1], lock_path=argv[-1] + "-locks", host="guest",
                        device_scan_attempts=int(os.environ.get("SCAN_ATTEMPTS", "3")))
    try:
        if command == "properties":
            print(json.dumps(attach.connector_properties()))
        elif command == "connect":
            print(json.dumps(attach.connect(json.loads(argv[1]))))
        elif command == "disconnect":
            attach.disconnect(json.loads(argv[1]), json.loads(argv[2]))
            print(json.dumps({"detached": True}))
        else:
            raise SystemExit(f"unknown command {command}")
    except exception.StackcoreError as err:
        print(json.dumps({"error": type(err).__name__, "message": str(err)}))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
