"""The driver under test: found by entry point, verified, configured.

Kept free of pytest so that tools (``stackcore conformance``) can build one too.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore import exception, families
from stackcore.plugins import loader


@dataclasses.dataclass
class DriverUnderTest:
    family: str
    name: str
    plugin: loader.Plugin
    conf: cfg.ConfigOpts
    declared: dict[str, bool]

    @classmethod
    def from_spec(
        cls, spec: str, config_files: Sequence[str] = (), settings: Sequence[str] = ()
    ) -> DriverUnderTest:
        """Build from ``"family:name"``, oslo.config files and ``group.option=value`` strings."""
        family_name, sep, name = spec.partition(":")
        if not sep or not name:
            raise exception.ConfigError(
                f"--stackcore-driver {spec!r} must be FAMILY:NAME, e.g. compute:fake"
            )
        family = families.get(family_name)
        contract = family.contract()
        plugin = loader.load_one(family.namespace, name, contract)
        conf = sc_conf.load(list(config_files))
        list_opts = getattr(plugin.cls, "list_opts", None)
        if list_opts is not None:
            sc_conf.register(conf, list_opts())
        for setting in settings:
            key, eq, value = setting.partition("=")
            group, _dot, option = key.rpartition(".")
            if not eq or not option:
                raise exception.ConfigError(
                    f"--stackcore-set {setting!r} must be GROUP.OPTION=VALUE"
                )
            sc_conf.set_override(conf, group or "DEFAULT", option, value)
        if not conf.state_path:
            sc_conf.set_override(conf, "DEFAULT", "state_path",
                                 tempfile.mkdtemp(prefix="stackcore-conformance-"))
        sc_conf.validate_all(conf)
        return cls(family_name, name, plugin, conf, contract.declared(plugin.cls))

    def new(self, *args: Any) -> Any:
        """An instance of the driver class built with the family's constructor arguments."""
        return self.plugin.cls(self.conf, *args)

