"""The core's ML2 type drivers (reference plugins: their backend is the database).

* :mod:`~stackcore.network.types.flat`, :mod:`~stackcore.network.types.vlan`,
  :mod:`~stackcore.network.types.vxlan` - the drivers;
* :mod:`~stackcore.network.types.ranged` - the base of the segment-ID types;
* :mod:`~stackcore.network.types.segments` - segment-ID allocation over free ranges.
"""
