"""The image family: the images servers boot from and volumes are copied from and to.

The public surface for drivers is what this package re-exports (a store imports from
``stackcore.image`` and :mod:`stackcore.exception`, nothing deeper):

* format inspection - :func:`inspect`, :class:`Inspected`;
* the image store contract - :class:`ImageStore`, ``CONTRACT``, ``NAMESPACE``,
  :class:`StoredImage`, :class:`Readable`, :class:`SizeLimitExceeded`, and the helpers every
  store uses: :class:`Digesting` (size, sha256 and limits in one pass), :class:`ChunkReader`,
  :func:`check_image_id`, :func:`check_range`, :data:`CHUNK_SIZE`,
  :data:`WRITE_CHUNK_SIZE`.

Inside the family: :mod:`~stackcore.image.api` (``cloud.image``), :mod:`~stackcore.image.models`
and ``migrations/``, :mod:`~stackcore.image.stores` (``file``, ``web``),
:mod:`~stackcore.image.stats`, :mod:`~stackcore.image.opts`, :mod:`~stackcore.image.family`.
"""

from stackcore.image.format import Inspected, inspect
from stackcore.image.store import (
    CHUNK_SIZE,
    CONTRACT,
    NAMESPACE,
    WRITE_CHUNK_SIZE,
    ChunkReader,
    Digesting,
    ImageStore,
    Readable,
    SizeLimitExceeded,
    StoredImage,
    check_image_id,
    check_range,
    write_chunks,
)

__all__ = [
    "CHUNK_SIZE",
    "CONTRACT",
    "NAMESPACE",
    "WRITE_CHUNK_SIZE",
    "ChunkReader",
    "Digesting",
    "ImageStore",
    "Inspected",
    "Readable",
    "SizeLimitExceeded",
    "StoredImage",
    "check_image_id",
    "check_range",
    "inspect",
    "write_chunks",
]
