"""The volume family: Cinder's driver architecture for block storage.

The public surface for volume driver authors is what this package re-exports (a driver imports
from ``stackcore.volume`` and :mod:`stackcore.exception`, nothing deeper):

* the contract - :class:`VolumeDriver`, :data:`ModelUpdate`, ``CONTRACT``, ``NAMESPACE``;
  for capability ``manage_existing``, :data:`SOURCE_NAME` and :func:`source_name` (the one
  form of an ``existing_ref``, checked);
* the objects a driver is handed - :class:`Volume`, :class:`Snapshot`, :class:`ImageFile`,
  :class:`StoreImage`, :data:`GiB`;
* the stats schema (:data:`STATS_SCHEMA`, :data:`STORAGE_PROTOCOLS`) and the connection_info
  schemas per protocol (:data:`CONNECTION_INFO_SCHEMAS`, :func:`validate_connection_info`).

Inside the family: :mod:`~stackcore.volume.api` (``cloud.volume``),
:mod:`~stackcore.volume.manager` (one per backend), :mod:`~stackcore.volume.backends`,
:mod:`~stackcore.volume.rpcapi`, :mod:`~stackcore.volume.models` and ``migrations/``,
:mod:`~stackcore.volume.opts`, :mod:`~stackcore.volume.placement` (pools, the one capacity
formula, claims, pool filters and weighers), :mod:`~stackcore.volume.fake`,
:mod:`~stackcore.volume.family`.
"""

from stackcore.volume.connection_info import DATA_SCHEMAS as CONNECTION_INFO_SCHEMAS
from stackcore.volume.connection_info import validate as validate_connection_info
from stackcore.volume.driver import (
    CONTRACT,
    NAMESPACE,
    SOURCE_NAME,
    ModelUpdate,
    VolumeDriver,
    source_name,
)
from stackcore.volume.objects import GiB, ImageFile, Snapshot, StoreImage, Volume
from stackcore.volume.stats import SCHEMA as STATS_SCHEMA
from stackcore.volume.stats import STORAGE_PROTOCOLS

__all__ = [
    "CONNECTION_INFO_SCHEMAS",
    "CONTRACT",
    "NAMESPACE",
    "SOURCE_NAME",
    "STATS_SCHEMA",
    "STORAGE_PROTOCOLS",
    "GiB",
    "ImageFile",
    "ModelUpdate",
    "Snapshot",
    "StoreImage",
    "Volume",
    "VolumeDriver",
    "source_name",
    "validate_connection_info",
]
