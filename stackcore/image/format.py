"""What an image file really is, checked before anything opens it with qemu.

Why: qemu follows whatever an image's header points at - a qcow2's backing file or external
data file, a VMDK's extents - wherever that is. A qcow2 registered as an image whose backing
file is ``/etc/shadow`` would hand that host file to the guest booted from it (OSSA-2024-001,
CVE-2024-32498 in Nova, Cinder and Glance). Their fix, used here too, is oslo.utils'
``format_inspector``: it parses the headers in Python, without qemu, detects the format from
the content (never from the name or the declared format) and runs each format's safety checks
(no backing file, no external data file, no extents outside the file, no partition tricks).

:func:`inspect` is called when an image is registered and again before every qemu-img or QEMU
use of an image file (a file on a path can change after it was registered): the libvirt
driver before it builds an overlay on the image, the volume manager before a driver copies
the image into a volume.
"""

from __future__ import annotations

import dataclasses
import os

from stackcore import exception

#: Declared formats whose content the inspector reports under another name: a raw disk image
#: holding a GPT partition table or an ISO 9660 file system is still raw to qemu (as Nova
#: accepts them).
_RAW_LAYOUTS = frozenset({"raw", "gpt", "iso"})


@dataclasses.dataclass(frozen=True)
class Inspected:
    """The format found in a file's content and the disk size it holds (bytes)."""

    format: str
    virtual_size: int


def inspect(path: str, declared: str, *, field: str = "path") -> Inspected:
    """Check that the file at ``path`` is a ``declared``-format image that opens nothing else.

    Raises :class:`~stackcore.exception.Invalid` naming ``field`` when the file does not exist,
    its content is of another format than ``declared`` (or of several at once: a polyglot), or
    it fails a safety check of its format (the message lists the checks that failed, e.g.
    ``backing_file``, ``data_file``, ``extents``); nothing is opened by qemu before.
    """
    # Imported here: start-up cost (the inspector pulls in cryptography for LUKS).
    from oslo_utils.imageutils import format_inspector

    if not os.path.isfile(path):
        raise exception.Invalid(field, "is not an existing regular file", path)
    try:
        inspector = format_inspector.detect_file_format(path)
    except format_inspector.ImageFormatError as err:
        # several inspectors matched: a file that is two formats at once is an attack
        raise exception.Invalid(field, f"is not one image format ({err})", path) from None
    detected = str(inspector) if inspector is not None else "raw"
    if detected != declared and not (declared == "raw" and detected in _RAW_LAYOUTS):
        what = "the file's content" if field == "path" else f"the content of {field}"
        raise exception.Invalid("disk_format", f"is {declared!r} but {what} is {detected}",
                                declared)
    assert inspector is not None  # a mismatch was refused above, raw always matches
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as err:
        failed = ", ".join(sorted(err.failures))
        reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(err.failures.items()))
        raise exception.Invalid(field, f"is a {detected} image that fails its format's safety "
                                f"checks ({failed}): {reasons}", path) from None
    except format_inspector.ImageFormatError as err:
        raise exception.Invalid(field, f"cannot be checked as {detected}: {err}", path) from None
    # A raw file's disk is the whole file (the inspector stops reading early and reports only
    # what it read); other formats say their size in their header.
    raw = detected in _RAW_LAYOUTS and declared == "raw"
    return Inspected(detected, os.path.getsize(path) if raw else int(inspector.virtual_size))
