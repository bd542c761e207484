"""The project family's descriptor and runtime (see :mod:`stackcore.families`): no plugins and
no services; its API is ``cloud.project`` (quotas), its tables the quota limits and usages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackcore.families import Family, StartContext

if TYPE_CHECKING:
    from oslo_config import cfg

FAMILY = Family(
    name="project",
    title="Project",
    package="stackcore.project",
    models=("stackcore.project.models",),
    options="stackcore.project.opts:list_opts",
    runtime_path="stackcore.project.family:Runtime",
    policies="stackcore.project.api:list_rules",
)


class Runtime:
    def __init__(self, conf: cfg.ConfigOpts, services: frozenset[str]) -> None:
        self.conf = conf

    def load_plugins(self, pending: Mapping[str, Mapping[str, Any]]) -> None:
        """No plugins."""

    def build_api(self, ctx: StartContext) -> Any:
        from stackcore.project.api import ProjectAPI

        return ProjectAPI(ctx.conf, ctx.db)

    def start(self, ctx: StartContext) -> None:
        """No services."""

    def stop(self) -> None:
        """Nothing to stop."""
