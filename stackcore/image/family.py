"""The image family's descriptor and its runtime in a Cloud (see :mod:`stackcore.families`).

Plugin kind ``image.store`` (namespace ``stackcore.image.stores``): where image bytes live
(contract :mod:`stackcore.image.store`). The stores named in ``[image] stores`` are loaded and
verified before the options are validated (a bad one fails start-up), set up when the API is
built, and used by ``cloud.image`` (:mod:`stackcore.image.api`). No service: the API calls the
stores in the caller's process. Registered local files stay ``cloud.compute.register_image``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackcore.families import Family, PluginKind, StartContext

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.plugins.loader import Plugin

FAMILY = Family(
    name="image",
    title="Image",
    package="stackcore.image",
    kinds=(
        PluginKind("image.store", "stackcore.image.stores", "stackcore.image.store:CONTRACT",
                   "stackcore.testing.suites.image_store", "Image stores"),
    ),
    models=("stackcore.image.models",),
    options="stackcore.image.opts:list_opts",
    plugin_options="stackcore.image.opts:plugin_opts",
    runtime_path="stackcore.image.family:Runtime",
    policies="stackcore.image.policies:list_rules",
    quotas="stackcore.image.quotas:RESOURCES",
)


class Runtime:
    """Image in one Cloud: its stores and ``cloud.image``."""

    def __init__(self, conf: cfg.ConfigOpts, services: frozenset[str]) -> None:
        self.conf = conf
        self.services = services
        self.plugins: dict[str, Plugin] = {}

    def load_plugins(self, pending: Mapping[str, Mapping[str, Any]]) -> None:
        from stackcore import conf as sc_conf
        from stackcore import exception
        from stackcore.image import opts
        from stackcore.image.store import CONTRACT, NAMESPACE
        from stackcore.plugins import loader

        names = list(self.conf.image.stores)
        for plugin in loader.load_ordered(NAMESPACE, names, CONTRACT):
            sc_conf.register(self.conf, [(opts.store_group(plugin.name),
                                          plugin.cls.get_store_options())])
            self.plugins[plugin.name] = plugin
        default = self.conf.image.default_store
        if names and default not in names:
            raise exception.ConfigError(f"[image] default_store {default!r} is not one of "
                                        f"[image] stores ({', '.join(names)})")

    def build_api(self, ctx: StartContext) -> Any:
        from stackcore.image.api import ImageAPI
        from stackcore.image.opts import store_group

        stores = {}
        for name, plugin in self.plugins.items():
            store = plugin.cls(ctx.conf, store_group(name))
            store.do_setup()
            stores[name] = store
        return ImageAPI(ctx.conf, ctx.db, stores)

    def start(self, ctx: StartContext) -> None:
        """No service: the API calls the stores itself. Uploads whose process died (left
        ``saving``) are marked ``killed`` and their partial data removed: nothing stays
        transient after a crash - at start-up (the same rule as the volume and compute
        managers' ``init_host``), then periodically (their ``reconcile_orphans``): an upload
        of another host is presumed dead only once its heartbeat is older than ``[image]
        interrupted_upload_timeout``, which may be after this start-up."""
        import threading

        from stackcore.image.api import HEARTBEATS_PER_TIMEOUT

        api = ctx.apis["image"]
        api._reap_interrupted_uploads()  # noqa: SLF001 - the family's own API
        interval = self.conf.image.interrupted_upload_timeout / HEARTBEATS_PER_TIMEOUT
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap, args=(api, interval), daemon=True,
                                        name="image-interrupted-uploads")
        self._reaper.start()

    def _reap(self, api: Any, interval: float) -> None:
        import logging

        while not self._stopping.wait(interval):
            try:
                api._reap_interrupted_uploads()  # noqa: SLF001 - the family's own API
            except Exception as err:  # noqa: BLE001 - a database outage: the next round retries
                logging.getLogger(__name__).warning("checking for interrupted image uploads "
                                                    "failed: %s", err)

    def stop(self) -> None:
        """Stop the periodic check (before the Cloud closes the database)."""
        from stackcore.service import STOP_TIMEOUT

        stopping = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
            self._reaper.join(STOP_TIMEOUT)
