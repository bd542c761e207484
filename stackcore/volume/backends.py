"""Loading the volume backends a process serves (``[volume] enabled_backends``).

Each backend is a config section: :data:`stackcore.volume.opts.BACKEND_OPTS` are registered in
it first (so ``volume_driver`` can be read), then its driver is loaded through the
``stackcore.volume.drivers`` entry point, verified against the contract, and its own options
registered in the same section - all before anything starts, so a bad backend fails start-up
naming its section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from oslo_config import cfg

from stackcore import exception, validate
from stackcore.db import api as db_api
from stackcore.plugins import loader
from stackcore.volume import driver as volume_driver
from stackcore.volume.manager import VolumeManager, backend_host
from stackcore.volume.opts import BACKEND_OPTS

if TYPE_CHECKING:
    from stackcore.image.api import ImageAPI
    from stackcore.image.store import ImageStore

RESERVED_SECTIONS = frozenset({"DEFAULT", "database", "compute", "scheduler", "volume",
                               "network"})


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    plugin: loader.Plugin


def register_backend_opts(conf: cfg.ConfigOpts) -> list[str]:
    """Register the common backend options in every enabled backend's section."""
    names = list(conf.volume.enabled_backends)
    if len(set(names)) != len(names):
        raise exception.ConfigError(f"[volume] enabled_backends lists a backend twice: {names}")
    for name in names:
        try:
            validate.identifier("[volume] enabled_backends", name)
        except exception.Invalid as err:
            raise exception.ConfigError(str(err), section="volume",
                                        option="enabled_backends") from err
        if name in RESERVED_SECTIONS:
            raise exception.ConfigError(
                f"[volume] enabled_backends: {name!r} is a core section, not a backend name",
                section="volume", option="enabled_backends")
        conf.register_opts(BACKEND_OPTS, group=name)
    return names


def load_drivers(conf: cfg.ConfigOpts) -> list[Backend]:
    """Load and verify each enabled backend's driver; register its options."""
    backends = []
    for name in conf.volume.enabled_backends:
        try:
            plugin = loader.load_one(volume_driver.NAMESPACE, conf[name].volume_driver,
                                     volume_driver.CONTRACT)
        except exception.PluginError as err:
            raise type(err)(f"backend [{name}]: {err}", **err.kwargs) from err
        conf.register_opts(plugin.cls.get_driver_options(), group=name)
        backends.append(Backend(name, plugin))
    return backends


def load_backup_driver(conf: cfg.ConfigOpts) -> loader.Plugin | None:
    """Load and verify ``[backup] backup_driver`` (None when unset); register its options in
    ``[backup_<name>]``."""
    from stackcore.volume.backup import driver as backup_driver

    name = conf.backup.backup_driver
    if not name:
        return None
    try:
        plugin = loader.load_one(backup_driver.NAMESPACE, name, backup_driver.CONTRACT)
    except exception.PluginError as err:
        raise type(err)(f"[backup] backup_driver: {err}", **err.kwargs) from err
    conf.register_opts(plugin.cls.get_driver_options(),
                       group=backup_driver.driver_group(plugin.name))
    return plugin


def build_managers(
    conf: cfg.ConfigOpts, db: db_api.Database, backends: list[Backend],
    image_stores: Mapping[str, ImageStore] | None = None,
    backup: loader.Plugin | None = None,
    image_api: ImageAPI | None = None,
) -> list[tuple[VolumeManager, str, str]]:
    """One ``(manager, service host, availability zone)`` per backend; ``image_stores``
    (``cloud.image.stores``) are where volumes created from uploaded images read them,
    ``image_api`` (``cloud.image``) where volumes are uploaded to (``upload_to_image``);
    ``backup`` the backup driver each volume service gets an instance of."""
    from stackcore.volume.backup.driver import driver_group

    built = []
    for backend in backends:
        host = backend_host(conf.host, backend.name)
        driver = backend.plugin.cls(conf, backend.name, host)
        backup_driver = None if backup is None else (
            backup.cls(conf, driver_group(backup.name), host), backup.name)
        zone = conf[backend.name].backend_availability_zone or \
            conf.volume.storage_availability_zone
        manager = VolumeManager(conf, db, host, backend.name, driver, backend.plugin.name,
                                image_stores, backup_driver, image_api)
        built.append((manager, host, zone))
    siblings = {host: manager for manager, host, _ in built}
    for manager, _, _ in built:
        manager.siblings = siblings  # a migration writes into another backend of this process
    return built
