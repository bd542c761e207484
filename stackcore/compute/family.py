"""The compute family's descriptor and its runtime in a Cloud (see :mod:`stackcore.families`).

Services: ``scheduler`` (compute placement, :mod:`stackcore.compute.placement.manager`) and
``compute`` (one :class:`~stackcore.compute.manager.ComputeManager` per configured host); the
named service ``metadata`` (:mod:`stackcore.compute.metadata`) runs only where a process names
it, since it listens on a port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackcore.families import Family, PluginKind, StartContext

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.compute.metadata.service import MetadataServer
    from stackcore.plugins.loader import Plugin

SCHEDULER_BINARY = "stackcore-scheduler"
COMPUTE_BINARY = "stackcore-compute"

FAMILY = Family(
    name="compute",
    title="Compute",
    package="stackcore.compute",
    kinds=(
        PluginKind("compute", "stackcore.compute.drivers", "stackcore.compute.driver:CONTRACT",
                   "stackcore.testing.suites.compute", "Hypervisor drivers"),
        PluginKind("scheduler.compute_filters", "stackcore.scheduler.filters.compute",
                   "stackcore.compute.placement.filters:CONTRACT",
                   "stackcore.testing.suites.scheduler", "Compute host filters"),
        PluginKind("scheduler.compute_weighers", "stackcore.scheduler.weighers.compute",
                   "stackcore.compute.placement.weighers:CONTRACT",
                   "stackcore.testing.suites.scheduler", "Compute host weighers"),
    ),
    services=("scheduler", "compute"),
    named_services=("metadata",),
    requires=("volume", "network"),
    models=("stackcore.compute.models", "stackcore.compute.placement.models"),
    options="stackcore.compute.opts:list_opts",
    plugin_options="stackcore.compute.opts:plugin_opts",
    runtime_path="stackcore.compute.family:Runtime",
    quotas="stackcore.compute.quotas:RESOURCES",
    policies="stackcore.compute.policies:list_rules",
)


class Runtime:
    """Compute in one Cloud: the hypervisor driver is loaded (and verified) only where this
    process runs compute hosts; the API is always built."""

    def __init__(self, conf: cfg.ConfigOpts, services: frozenset[str]) -> None:
        self.conf = conf
        self.services = services
        self.driver: Plugin | None = None
        #: the metadata service, where this process runs it
        self.metadata: MetadataServer | None = None

    def load_plugins(self, pending: Mapping[str, Mapping[str, Any]]) -> None:
        from stackcore import conf as sc_conf
        from stackcore.compute import driver
        from stackcore.plugins import loader

        if "metadata" in self.services:  # its configuration fails start-up before any service
            from stackcore.compute.metadata.service import check_config

            check_config(self.conf)
        if "compute" in self.services and self.conf.compute.hosts:
            self.driver = loader.load_one(driver.NAMESPACE, self.conf.compute.driver,
                                          driver.CONTRACT)
            sc_conf.register(self.conf, self.driver.cls.list_opts())

    def build_api(self, ctx: StartContext) -> Any:
        from stackcore.compute.api import ComputeAPI, servers_using_image

        image = ctx.apis.get("image")
        if image is not None:  # the image family cannot see servers; it asks before a delete
            image.in_use_checks.append(("server", servers_using_image))
        return ComputeAPI(ctx.conf, ctx.db, ctx.transport, network=ctx.apis.get("network"),
                          volume=ctx.apis.get("volume"), image=image)

    def start(self, ctx: StartContext) -> None:
        conf = ctx.conf
        if "scheduler" in self.services:
            from stackcore.compute.placement.manager import SchedulerManager

            ctx.run(SchedulerManager(conf, ctx.db), SCHEDULER_BINARY, conf.host, "nova")
        if self.driver is not None:
            from stackcore.compute.manager import ComputeManager

            image = ctx.apis.get("image")
            for host in conf.compute.hosts:
                manager = ComputeManager(conf, ctx.db, host, self.driver.cls(conf, host),
                                         conf.compute.driver, transport=ctx.transport,
                                         network_api=ctx.apis.get("network"),
                                         volume_api=ctx.apis.get("volume"),
                                         image_stores=getattr(image, "stores", None),
                                         image_api=image)
                ctx.run(manager, COMPUTE_BINARY, host, conf.compute.availability_zone)
        if "metadata" in self.services:
            from stackcore.compute.metadata.service import MetadataServer

            server = MetadataServer(conf, ctx.db, ctx.apis.get("network"))
            server.start()
            self.metadata = server

    def stop(self) -> None:
        """Stop the metadata service (the other services are the Cloud's)."""
        server, self.metadata = self.metadata, None
        if server is not None:
            server.stop()
