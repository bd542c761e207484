"""Volume backup drivers (``stackcore.volume.backup_drivers``): ``posix`` and ``ceph``."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

#: Bytes read and written at a time (RBD's default object size): a chunk of zeros is skipped.
CHUNK = 4 * 1024 * 1024
_ZEROS = bytes(CHUNK)


def is_zero(data: bytes) -> bool:
    return data == _ZEROS[:len(data)]


def chunks(path: str, size: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, data)`` of the first ``size`` bytes of ``path``, :data:`CHUNK` at a time."""
    with open(path, "rb") as handle:
        offset = 0
        while offset < size:
            data = handle.read(min(CHUNK, size - offset))
            if not data:
                raise EOFError(f"{path} ends at {offset} bytes, expected {size}")
            yield offset, data
            offset += len(data)


def data_chunks(path: str, size: int) -> Iterator[tuple[int, bytes]]:
    """Like :func:`chunks`, but only where the file holds data: holes (``SEEK_HOLE``) read
    zeros and are skipped unread - a staged thin volume is mostly holes. Where the file
    system cannot say, every chunk is yielded."""
    actual = os.path.getsize(path)
    if actual < size:
        raise EOFError(f"{path} ends at {actual} bytes, expected {size}")
    with open(path, "rb") as handle:
        fd = handle.fileno()
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
                if start >= size:
                    return
                end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            except OSError as err:
                if err.errno == errno.ENXIO:  # nothing but a hole up to the end
                    return
                start, end = offset, size  # no SEEK_DATA here: all of it is data
            handle.seek(start)
            while start < end:
                data = handle.read(min(CHUNK, end - start))
                if not data:
                    raise EOFError(f"{path} ends at {start} bytes, expected {size}")
                yield start, data
                start += len(data)
            offset = end
