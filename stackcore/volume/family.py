"""The volume family's descriptor and its runtime in a Cloud (see :mod:`stackcore.families`).

Service: ``volume`` - one :class:`~stackcore.volume.manager.VolumeManager` per backend named in
``[volume] enabled_backends`` (each backend a config section, see
:mod:`stackcore.volume.backends`). Volume placement is a library call of the API (no service).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackcore.families import Family, PluginKind, StartContext

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.plugins.loader import Plugin
    from stackcore.volume.backends import Backend

VOLUME_BINARY = "stackcore-volume"

FAMILY = Family(
    name="volume",
    title="Volume",
    package="stackcore.volume",
    kinds=(
        PluginKind("volume", "stackcore.volume.drivers", "stackcore.volume.driver:CONTRACT",
                   "stackcore.testing.suites.volume", "Volume drivers"),
        PluginKind("volume.backup", "stackcore.volume.backup_drivers",
                   "stackcore.volume.backup.driver:CONTRACT",
                   "stackcore.testing.suites.volume_backup", "Volume backup drivers"),
        PluginKind("scheduler.volume_filters", "stackcore.scheduler.filters.volume",
                   "stackcore.volume.placement.filters:CONTRACT",
                   "stackcore.testing.suites.scheduler", "Volume pool filters"),
        PluginKind("scheduler.volume_weighers", "stackcore.scheduler.weighers.volume",
                   "stackcore.volume.placement.weighers:CONTRACT",
                   "stackcore.testing.suites.scheduler", "Volume pool weighers"),
    ),
    services=("volume",),
    models=("stackcore.volume.models",),
    options="stackcore.volume.opts:list_opts",
    plugin_options="stackcore.volume.opts:plugin_opts",
    runtime_path="stackcore.volume.family:Runtime",
    quotas="stackcore.volume.quotas:RESOURCES",
    policies="stackcore.volume.policies:list_rules",
)


class Runtime:
    """Volume in one Cloud: backends (and their drivers) only where this process runs the
    volume service; the API (with volume placement) always."""

    def __init__(self, conf: cfg.ConfigOpts, services: frozenset[str]) -> None:
        self.conf = conf
        self.services = services
        self.backends: list[Backend] = []
        self.backup: Plugin | None = None

    def load_plugins(self, pending: Mapping[str, Mapping[str, Any]]) -> None:
        if "volume" not in self.services or not self.conf.volume.enabled_backends:
            return
        from stackcore import conf as sc_conf
        from stackcore.volume import backends

        for backend in backends.register_backend_opts(self.conf):
            driver = pending.get(backend, {}).get("volume_driver")
            if driver is not None:  # needed before the driver loads
                sc_conf.set_override(self.conf, backend, "volume_driver", driver)
        self.backends = backends.load_drivers(self.conf)
        self.backup = backends.load_backup_driver(self.conf)

    def build_api(self, ctx: StartContext) -> Any:
        from stackcore.volume.api import VolumeAPI, volumes_cloned_from_image

        image = ctx.apis.get("image")
        if image is not None:  # the image family cannot see volumes; it asks before a delete
            image.in_use_checks.append(("copy-on-write volume", volumes_cloned_from_image))
        return VolumeAPI(ctx.conf, ctx.db, ctx.transport, image=image)

    def start(self, ctx: StartContext) -> None:
        if not self.backends:
            return
        from stackcore.volume import backends

        image = ctx.apis.get("image")
        stores = getattr(image, "stores", None)
        for manager, host, zone in backends.build_managers(ctx.conf, ctx.db, self.backends,
                                                           stores, self.backup, image):
            manager.transport = ctx.transport  # instance events to compute hosts
            ctx.run(manager, VOLUME_BINARY, host, zone)

    def stop(self) -> None:
        """Nothing beyond the services."""
