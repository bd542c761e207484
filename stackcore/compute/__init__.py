"""The compute family: servers on hypervisors.

The public surface for hypervisor driver authors is what this package re-exports (a driver
imports from ``stackcore.compute`` and :mod:`stackcore.exception`, nothing deeper; the layer
contracts in ``setup.cfg`` check it):

* the contract - :class:`HypervisorDriver`, ``CONTRACT`` (and its version), ``NAMESPACE``,
  :func:`snapshot_format` (the format a snapshot is written in);
* the objects a driver is handed and returns - :class:`Instance`, :class:`InstanceInfo`,
  :class:`Image`, :class:`Flavor`, :class:`PowerState`, :class:`RebootType`;
* the stats schema every report is checked against - :data:`STATS_SCHEMA`.

Inside the family: :mod:`~stackcore.compute.api` (``cloud.compute``),
:mod:`~stackcore.compute.manager` (one per host), :mod:`~stackcore.compute.rpcapi`,
:mod:`~stackcore.compute.models` and ``migrations/``, :mod:`~stackcore.compute.opts`,
:mod:`~stackcore.compute.placement` (the ``scheduler`` service, host filters and weighers,
claims, aggregates and server groups), :mod:`~stackcore.compute.fake` (the reference driver),
:mod:`~stackcore.compute.family` (the descriptor).
"""

from stackcore.compute.driver import CONTRACT, NAMESPACE, HypervisorDriver, snapshot_format
from stackcore.compute.objects import Flavor, Image, Instance, InstanceInfo, PowerState, RebootType
from stackcore.compute.stats import SCHEMA as STATS_SCHEMA

__all__ = [
    "CONTRACT",
    "NAMESPACE",
    "STATS_SCHEMA",
    "Flavor",
    "HypervisorDriver",
    "Image",
    "Instance",
    "InstanceInfo",
    "PowerState",
    "RebootType",
    "snapshot_format",
]
