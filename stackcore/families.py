"""The families: one descriptor each, and the one list of them.

A family is one folder owning its vertical - contract(s), objects, public API, manager(s), RPC
APIs, SQL models and their Alembic branch, options, stats schema and placement - described by a
:class:`Family` in ``stackcore/<family>/family.py`` (attribute ``FAMILY``) and registered by one
line in :data:`REGISTERED`. Everything that used to list the families by hand iterates over the
descriptors instead:

* :class:`stackcore.Cloud` starts each family through its :class:`Runtime` (load and verify
  plugins, build the family API, start the services asked for), in registration order;
* :func:`stackcore.conf.load` and the ``oslo.config.opts`` hook register each family's options;
* the Alembic environment imports each family's models and reads its version location;
* ``stackcore drivers``, ``matrix`` and ``conformance`` walk each family's plugin kinds;
* the docs extension renders each family's plugin kinds.

Descriptors name modules by import path and are imported lazily, so listing families costs
almost nothing. ``docs/source/adding-a-family.rst`` walks through adding one.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.db.api import Database
    from stackcore.project.policy import Policy
    from stackcore.project.quota import Quotas
    from stackcore.rpc import Transport
    from stackcore.service import Service

#: The registered families, in start-up order: a family's API may use the APIs of the families
#: before it (compute's API uses network's and volume's), and its services start after theirs.
REGISTERED: tuple[str, ...] = ("project", "image", "volume", "network", "compute")


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    found = importlib.import_module(module)
    return getattr(found, attr) if attr else found


@dataclasses.dataclass(frozen=True)
class PluginKind:
    """One kind of plugin of a family: an entry-point namespace, the contract its plugins must
    meet and the conformance suite they run (empty: none yet)."""

    name: str  # e.g. "network.type": the name CLI, results and matrix use
    namespace: str  # e.g. "stackcore.network.type_drivers"
    contract_path: str  # "module:attribute"
    suite: str = ""  # e.g. "stackcore.testing.suites.network_type"
    title: str = ""  # for docs, e.g. "ML2 type drivers"

    def contract(self) -> Contract:
        contract = _resolve(self.contract_path)
        assert isinstance(contract, Contract), self.contract_path
        return contract


#: ``run(manager, binary, host, availability_zone)``: serve a manager as a service of the Cloud.
RunService = Callable[[Any, str, str, str], "Service"]


@dataclasses.dataclass
class StartContext:
    """What a family's runtime gets to build its API and start its services."""

    conf: cfg.ConfigOpts
    db: Database
    transport: Transport
    apis: Mapping[str, Any]  # the APIs of the families started before, by family name
    run: RunService
    policy: Policy  # the Cloud's policy enforcer
    quotas: Quotas  # the Cloud's quota engine


class Runtime(Protocol):
    """A family at run time in one Cloud (built by :meth:`Family.runtime`).

    The Cloud calls, in order, for every family: :meth:`load_plugins` (before the options are
    validated: load and verify every plugin the configuration names, register their options);
    then, once the database and transport exist, :meth:`build_api`, then :meth:`start`;
    :meth:`stop` at close, in reverse order.
    """

    def load_plugins(self, pending: Mapping[str, Mapping[str, Any]]) -> None:
        """Load and verify the configured plugins, registering their options. ``pending`` are
        overrides of groups not registered yet (a plugin's group, or a backend section)."""

    def build_api(self, ctx: StartContext) -> Any:
        """The family's public API object (``cloud.<family>``)."""

    def start(self, ctx: StartContext) -> None:
        """Start the family's services this process runs (through ``ctx.run``)."""

    def stop(self) -> None:
        """Stop what :meth:`start` started beyond services (e.g. local agents)."""


@dataclasses.dataclass(frozen=True)
class Family:
    """Everything the rest of stackcore needs to know about one family."""

    name: str  # "compute"; also the Cloud attribute of its API (``cloud.compute``)
    title: str
    package: str  # "stackcore.compute"
    kinds: tuple[PluginKind, ...] = ()
    #: services this family can run in a process, e.g. ("scheduler", "compute"): a process
    #: runs them all unless it names some (``Cloud(services=...)``)
    services: tuple[str, ...] = ()
    #: services that run only where a process names them, e.g. ("metadata",): they listen on
    #: a port, so one process of a deployment runs each, never every process by default
    named_services: tuple[str, ...] = ()
    #: families whose APIs this one's API uses (they must be registered before it)
    requires: tuple[str, ...] = ()
    #: modules whose import defines the family's tables on the shared Base
    models: tuple[str, ...] = ()
    #: "module:callable" -> ``[(group, options)]`` registered on every Cloud
    options: str = ""
    #: "module:callable" -> ``[(group, options)]`` for the sample config and docs only
    #: (options of the family's core plugins, registered when a plugin loads)
    plugin_options: str = ""
    #: "module:Class" implementing :class:`Runtime`, built as ``Class(conf, services)``
    runtime_path: str = ""
    #: "module:ATTRIBUTE" -> the family's countable resources (``stackcore.project.quota.
    #: Resource``), each a ``[quota]`` option
    quotas: str = ""
    #: "module:callable" -> the family's policy rule defaults (oslo.policy ``RuleDefault``)
    policies: str = ""

    @property
    def migrations(self) -> str:
        """The folder of this family's Alembic branch (``stackcore/<family>/migrations``)."""
        module = importlib.import_module(self.package)
        assert module.__file__ is not None
        return os.path.join(os.path.dirname(module.__file__), "migrations")

    def option_groups(self) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return list(_resolve(self.options)()) if self.options else []

    def plugin_option_groups(self) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return list(_resolve(self.plugin_options)()) if self.plugin_options else []

    def quota_resources(self) -> list[Any]:
        return list(_resolve(self.quotas)) if self.quotas else []

    def policy_rules(self) -> list[Any]:
        return list(_resolve(self.policies)()) if self.policies else []

    def runtime(self, conf: cfg.ConfigOpts, services: Sequence[str]) -> Runtime | None:
        """The family in one Cloud; None for a family with nothing to run (tables only)."""
        if not self.runtime_path:
            return None
        runtime: Runtime = _resolve(self.runtime_path)(conf, frozenset(services))
        return runtime


@functools.cache
def all_families() -> tuple[Family, ...]:
    """Every registered family's descriptor, in :data:`REGISTERED` order."""
    found = []
    for name in REGISTERED:
        family = _resolve(f"stackcore.{name}.family:FAMILY")
        assert isinstance(family, Family) and family.name == name, name
        missing = [r for r in family.requires if r not in REGISTERED[: REGISTERED.index(name)]]
        assert not missing, f"family {name} requires {missing}, registered after it"
        found.append(family)
    return tuple(found)


def family(name: str) -> Family:
    """The family called ``name``; ConfigError listing the known ones otherwise."""
    for found in all_families():
        if found.name == name:
            return found
    from stackcore.exception import ConfigError

    raise ConfigError(f"unknown family {name!r} (known: {', '.join(REGISTERED)})")


def kinds() -> tuple[PluginKind, ...]:
    """Every plugin kind of every family."""
    return tuple(kind for fam in all_families() for kind in fam.kinds)


def services() -> tuple[str, ...]:
    """The services a process runs by default (all of them but the named ones), in start
    order."""
    return tuple(s for fam in all_families() for s in fam.services)


def named_services() -> tuple[str, ...]:
    """The services that run only where a process names them (``Family.named_services``)."""
    return tuple(s for fam in all_families() for s in fam.named_services)


def all_services() -> tuple[str, ...]:
    """Every service name a process can run: the default ones, then the named ones."""
    return services() + named_services()


def get(name: str) -> PluginKind:
    """The plugin kind called ``name`` (e.g. ``network.type``); ConfigError listing the known
    ones otherwise."""
    for kind in kinds():
        if kind.name == name:
            return kind
    from stackcore.exception import ConfigError

    known = ", ".join(k.name for k in kinds())
    raise ConfigError(f"unknown plugin family {name!r} (known: {known})")


def select(name: str | None) -> tuple[PluginKind, ...]:
    """The plugin kinds named by ``name``: all (None), one kind (``network.type``; a kind named
    like its family, ``compute``, is the kind) or every kind of a family (``network``).
    ConfigError for an unknown name."""
    if not name:
        return kinds()
    for kind in kinds():
        if kind.name == name:
            return (kind,)
    if name in REGISTERED:
        return family(name).kinds
    return (get(name),)
