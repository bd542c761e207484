"""Options of the project family: ``[quota]`` - one default limit per countable resource of
every family (``-1``: unlimited) - and oslo.policy's ``[oslo_policy]`` (registered by it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GROUP = "quota"


def resources() -> dict[str, Any]:
    """Every family's countable resources by name."""
    from stackcore import families

    found: dict[str, Any] = {}
    for family in families.all_families():
        for resource in family.quota_resources():
            if resource.name in found:
                raise RuntimeError(f"quota resource {resource.name!r} declared twice")
            found[resource.name] = resource
    return found


def list_opts() -> list[tuple[str, Sequence[Any]]]:
    """``[quota]`` and oslo.policy's ``[oslo_policy]`` (``policy_file`` ...), registered at
    start-up so that a config file may set them and they are validated with the rest."""
    from oslo_config import cfg
    from oslo_policy import opts as policy_opts

    return [(GROUP, [cfg.IntOpt(r.name, default=r.default, min=-1, max=2**31 - 1,
                                help=f"{r.help} (-1: unlimited).")
                     for r in resources().values()]),
            *[(group, list(options)) for group, options in policy_opts.list_opts()]]
