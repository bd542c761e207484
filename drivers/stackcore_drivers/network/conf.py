"""Building an agent's configuration (the console scripts and tests use the same path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore_drivers.network.agent_base import AGENT_OPTS, SECURITYGROUP_OPTS


def load_agent_conf(
    groups: Sequence[tuple[str, Sequence[cfg.Opt]]],
    config_files: Sequence[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> cfg.ConfigOpts:
    """The core options plus ``[agent]``, ``[securitygroup]`` and ``groups``,
    ``config_files`` parsed, then ``overrides`` (``{group: {option: value}}``) applied; every
    value read once so a bad one fails now with its section and option named."""
    conf = sc_conf.load(config_files)
    sc_conf.register(conf, [("agent", AGENT_OPTS), ("securitygroup", SECURITYGROUP_OPTS),
                            *groups])
    for group, values in (overrides or {}).items():
        for name, value in values.items():
            sc_conf.set_override(conf, group, name, value)
    sc_conf.validate_all(conf)
    return conf
