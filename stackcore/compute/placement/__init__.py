"""Compute placement: where a server runs.

* :mod:`~stackcore.compute.placement.manager` - the ``scheduler`` service
  (``select_destinations``, ``reschedule``, ``explain``) and its client
  :mod:`~stackcore.compute.placement.rpcapi`;
* :mod:`~stackcore.compute.placement.hosts` - host states (per host and columnar);
* :mod:`~stackcore.compute.placement.request` - the request, and the one place it is built;
* :mod:`~stackcore.compute.placement.filters`, :mod:`~stackcore.compute.placement.weighers` -
  the host filter and weigher contracts and the core plugins;
* :mod:`~stackcore.compute.placement.claims` - atomic claims on hosts;
* :mod:`~stackcore.compute.placement.api` - aggregates and server groups (``cloud.compute``);
* :mod:`~stackcore.compute.placement.models`, :mod:`~stackcore.compute.placement.opts`.

The filter/weigher machinery itself is the family-free framework :mod:`stackcore.scheduler`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.scheduler.handler import Handler


def load_handler(conf: cfg.ConfigOpts) -> Handler:
    """The configured compute filters and weighers (``[scheduler] compute_filters`` /
    ``compute_weighers``), loaded, verified and built."""
    from stackcore.compute.placement import filters, weighers
    from stackcore.scheduler import handler

    return handler.load(
        conf, "host",
        handler.PluginList(filters.NAMESPACE, filters.CONTRACT, conf.scheduler.compute_filters),
        handler.PluginList(weighers.NAMESPACE, weighers.CONTRACT,
                           conf.scheduler.compute_weighers))
