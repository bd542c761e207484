"""Instance disks on local files: qcow2 overlays on image-store files, and snapshots back.

qemu-img is run with argument lists (never a shell). Outputs are written under a temporary
name and renamed into place, so a failure never leaves a half-written file where a reader
would take it for a good one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess

from stackcore import exception, image

QEMU_IMG = "qemu-img"
_FORMATS = ("raw", "qcow2")


def run_qemu_img(args: list[str], what: str, hint: str = "") -> str:
    """``qemu-img ARGS`` (argument list, never a shell); its stdout. Any failure is one
    DriverError naming ``what`` (and ``hint``, what else the operation needs, after
    qemu-img's own message)."""
    try:
        done = subprocess.run(  # fixed program, argument list (never a shell)
            [QEMU_IMG, *args], check=True, capture_output=True, text=True, timeout=600
        )
    except FileNotFoundError:
        raise exception.DriverError(
            f"{what}: {QEMU_IMG} is not installed (Debian: apt-get install qemu-utils)"
        ) from None
    except subprocess.CalledProcessError as err:
        raise exception.DriverError(
            f"{what}: qemu-img exited {err.returncode}: {err.stderr.strip()}"
            + (f" ({hint})" if hint else "")) from err
    except subprocess.TimeoutExpired as err:
        raise exception.DriverError(f"{what}: qemu-img timed out") from err
    return done.stdout


def check_format(disk_format: str) -> str:
    if disk_format not in _FORMATS:
        raise exception.Invalid("image.disk_format",
                                f"the libvirt driver boots {', '.join(_FORMATS)} images",
                                disk_format)
    return disk_format


def create_overlay(base: str, base_format: str, overlay: str, min_size_bytes: int) -> None:
    """A qcow2 at ``overlay`` backed by ``base``, at least ``min_size_bytes`` large (the
    flavor's root disk) and never smaller than the base image."""
    if not os.path.isfile(base):
        raise exception.NotFound("image file", base, f"image file {base} does not exist")
    check_format(base_format)
    # Before qemu-img opens it: the image's content is its declared format and names no other
    # file (backing file, data file) qemu would follow - the file may have changed since it
    # was registered. The inspector reads the virtual size too (one qemu-img run less).
    size = max(image.inspect(base, base_format, field=f"image file {base}").virtual_size,
               min_size_bytes)
    partial = overlay + ".part"
    try:
        run_qemu_img(["create", "-q", "-f", "qcow2", "-F", base_format, "-b", os.path.abspath(base),
              partial, str(size)], f"creating overlay {overlay}")
        os.replace(partial, overlay)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def convert(source: str, source_format: str, target: str, target_format: str) -> None:
    """Write ``source`` (with its whole backing chain flattened) to ``target``."""
    check_format(target_format)
    partial = target + ".part"
    try:
        run_qemu_img(["convert", "-f", source_format, "-O", target_format, source, partial],
             f"writing snapshot {target}")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def copy(source: str, target: str) -> None:
    """Byte copy (the test driver's disks are never opened, so there is nothing to convert)."""
    partial = target + ".part"
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def grow(path: str, size_bytes: int) -> None:
    """Grow the qcow2 ``path`` to ``size_bytes`` (a resize's new root disk); a disk already
    that large is left as it is (disks never shrink)."""
    info = json.loads(run_qemu_img(["info", "--output=json", "-U", path],
                                   f"reading the size of {path}"))
    if int(info.get("virtual-size", 0)) >= size_bytes:
        return
    run_qemu_img(["resize", "-q", "-f", "qcow2", path, str(size_bytes)],
                 f"growing {path} to {size_bytes} bytes")


def backing_file(path: str) -> str | None:
    """The backing file the qcow2 ``path`` names (None: it has none)."""
    info = json.loads(run_qemu_img(["info", "--output=json", "-U", path],
                                   f"reading the backing file of {path}"))
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    return str(backing) if backing else None


def rebase_unsafe(path: str, backing: str, backing_format: str) -> None:
    """Point the qcow2 ``path`` at ``backing`` without copying anything: the same image in
    another host's image cache (a migrated disk), identical content."""
    check_format(backing_format)
    run_qemu_img(["rebase", "-q", "-u", "-f", "qcow2", "-F", backing_format, "-b",
                  os.path.abspath(backing), path], f"pointing {path} at {backing}")
