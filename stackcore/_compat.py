"""Old names that keep working for one release, with a DeprecationWarning (the policy:
``doc/source/deprecation.rst``).

Two tables, one per kind of move:

* :data:`MOVED_MODULES` - a module moved to another path (``stackcore.network.type_flat`` is now
  ``stackcore.network.types.flat``). The old path still imports (and old entry-point targets
  such as ``stackcore.network.type_flat:FlatTypeDriver`` still load): a finder installed by
  ``import stackcore`` hands out the new module under the old name, warning once.
* :data:`MOVED_NAMES` - a name left a module that still exists (``stackcore.db.models.Instance``
  is now ``stackcore.compute.models.Instance``): that module's ``__getattr__`` is
  :func:`moved_names_getattr`, which resolves the old name, warning.

A moved name is removed from these tables in the release after the one that moved it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

#: The release in which the old names below stop working.
REMOVED_IN = "0.3"

MOVED_MODULES: dict[str, str] = {
    # families as verticals (0.2): placement moved under the families it places for
    "stackcore.scheduler.manager": "stackcore.compute.placement.manager",
    "stackcore.scheduler.rpcapi": "stackcore.compute.placement.rpcapi",
    "stackcore.scheduler.api": "stackcore.compute.placement.api",
    "stackcore.scheduler.claims": "stackcore.compute.placement.claims",
    "stackcore.scheduler.hosts": "stackcore.compute.placement.hosts",
    "stackcore.scheduler.models": "stackcore.compute.placement.models",
    "stackcore.scheduler.opts": "stackcore.compute.placement.opts",
    "stackcore.scheduler.filters.compute": "stackcore.compute.placement.filters",
    "stackcore.scheduler.weighers.compute": "stackcore.compute.placement.weighers",
    "stackcore.scheduler.pools": "stackcore.volume.placement.pools",
    "stackcore.scheduler.volume": "stackcore.volume.placement.scheduler",
    "stackcore.scheduler.filters.volume": "stackcore.volume.placement.filters",
    "stackcore.scheduler.weighers.volume": "stackcore.volume.placement.weighers",
    "stackcore.volume.capacity": "stackcore.volume.placement.capacity",
    "stackcore.volume.claims": "stackcore.volume.placement.claims",
    # the network family split into contracts, the ML2 plugin, reference plugins and agents
    "stackcore.network.type_driver": "stackcore.network.contracts.type_driver",
    "stackcore.network.mechanism_driver": "stackcore.network.contracts.mechanism_driver",
    "stackcore.network.agent_contract": "stackcore.network.contracts.agent",
    "stackcore.network.plugin": "stackcore.network.ml2.plugin",
    "stackcore.network.managers": "stackcore.network.ml2.managers",
    "stackcore.network.contexts": "stackcore.network.ml2.contexts",
    "stackcore.network.ipam": "stackcore.network.ml2.ipam",
    "stackcore.network.segments": "stackcore.network.types.segments",
    "stackcore.network.type_flat": "stackcore.network.types.flat",
    "stackcore.network.type_vlan": "stackcore.network.types.vlan",
    "stackcore.network.type_vxlan": "stackcore.network.types.vxlan",
    "stackcore.network.type_ranged": "stackcore.network.types.ranged",
    "stackcore.network.mech_fake": "stackcore.network.mechanisms.fake",
    "stackcore.network.agent_rpc": "stackcore.network.agents.rpc",
    "stackcore.plugins.families": "stackcore.families",
}

#: module -> {old name: "new.module:name"}
MOVED_NAMES: dict[str, dict[str, str]] = {
    "stackcore.db.models": {
        **{name: f"stackcore.compute.models:{name}" for name in (
            "ComputeNode", "Flavor", "Instance", "InstanceFault", "Allocation")},
        "Image": "stackcore.image.models:Image",
    },
    "stackcore.managers": {"Fault": "stackcore.faults:Fault"},
    "stackcore.compute.rpcapi": {
        "SchedulerRPCAPI": "stackcore.compute.placement.rpcapi:SchedulerRPCAPI"},
    "stackcore.scheduler.request": {
        "POLICIES": "stackcore.compute.placement.request:POLICIES",
        "ServerGroupInfo": "stackcore.compute.placement.request:ServerGroupInfo",
        "ComputeRequest": "stackcore.compute.placement.request:ComputeRequest",
        "VolumeRequest": "stackcore.volume.placement.request:VolumeRequest",
    },
    "stackcore.scheduler.filters.base": {
        "HostFilter": "stackcore.compute.placement.filters:HostFilter",
        "COMPUTE_CONTRACT": "stackcore.compute.placement.filters:CONTRACT",
        "COMPUTE_NAMESPACE": "stackcore.compute.placement.filters:NAMESPACE",
        "PoolFilter": "stackcore.volume.placement.filters:PoolFilter",
        "VOLUME_CONTRACT": "stackcore.volume.placement.filters:CONTRACT",
        "VOLUME_NAMESPACE": "stackcore.volume.placement.filters:NAMESPACE",
    },
    "stackcore.scheduler.weighers.base": {
        "HostWeigher": "stackcore.compute.placement.weighers:HostWeigher",
        "COMPUTE_CONTRACT": "stackcore.compute.placement.weighers:CONTRACT",
        "COMPUTE_NAMESPACE": "stackcore.compute.placement.weighers:NAMESPACE",
        "PoolWeigher": "stackcore.volume.placement.weighers:PoolWeigher",
        "VOLUME_CONTRACT": "stackcore.volume.placement.weighers:CONTRACT",
        "VOLUME_NAMESPACE": "stackcore.volume.placement.weighers:NAMESPACE",
    },
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old name is deprecated and will be removed in "
                  f"stackcore {REMOVED_IN}", DeprecationWarning, stacklevel=3)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: types.ModuleType) -> None:
        """The new module is already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves the old paths of :data:`MOVED_MODULES` to the new modules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Install the finder (idempotent); ``import stackcore`` does it."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


def moved_names_getattr(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving the names :data:`MOVED_NAMES` lists for ``module``."""

    def __getattr__(name: str) -> Any:
        target = MOVED_NAMES.get(module, {}).get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, attr = target.partition(":")
        _warn(f"{module}.{name}", f"{new_module}.{attr}")
        return getattr(importlib.import_module(new_module), attr)

    return __getattr__
