"""Volume placement: which backend pool a volume lives in.

* :mod:`~stackcore.volume.placement.scheduler` - pool states, filters and weighers, then an
  atomic claim (a library call of ``cloud.volume``: no RPC hop);
* :mod:`~stackcore.volume.placement.pools` - pool states (per pool and columnar) and the one
  pool query;
* :mod:`~stackcore.volume.placement.capacity` - the one capacity formula (Cinder semantics);
* :mod:`~stackcore.volume.placement.claims` - atomic capacity claims on pools;
* :mod:`~stackcore.volume.placement.request` - the request;
* :mod:`~stackcore.volume.placement.filters`, :mod:`~stackcore.volume.placement.weighers` -
  the pool filter and weigher contracts and the core plugins;
* :mod:`~stackcore.volume.placement.opts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.scheduler.handler import Handler


def load_handler(conf: cfg.ConfigOpts) -> Handler:
    """The configured volume filters and weighers (``[scheduler] volume_filters`` /
    ``volume_weighers``), loaded, verified and built."""
    from stackcore.scheduler import handler
    from stackcore.volume.placement import filters, weighers

    return handler.load(
        conf, "pool",
        handler.PluginList(filters.NAMESPACE, filters.CONTRACT, conf.scheduler.volume_filters),
        handler.PluginList(weighers.NAMESPACE, weighers.CONTRACT, conf.scheduler.volume_weighers))
