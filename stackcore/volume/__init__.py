"""The volume family: Cinder's driver architecture for block storage.

* :mod:`stackcore.volume.driver` - the contract every volume driver meets (minimum features);
* :mod:`stackcore.volume.stats` - the stats schema checked on every report;
* :mod:`stackcore.volume.connection_info` - connection_info schemas per protocol;
* :mod:`stackcore.volume.placement.capacity` - the one capacity formula (Cinder semantics);
* :mod:`stackcore.volume.manager` - ``VolumeManager``, one per backend;
* :mod:`stackcore.volume.api` - ``cloud.volume``.
"""
