"""Volume backup drivers (``stackcore.volume.backup_drivers``): ``posix`` and ``ceph``."""

from __future__ import annotations

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
