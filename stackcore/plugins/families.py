"""The registry of plugin families: entry-point namespace and contract of each.

The contract is named by import path and imported lazily, so listing the families costs
nothing. Each family package adds its line here when it is introduced.
"""

from __future__ import annotations

import dataclasses
import importlib

from stackcore.plugins.contract import Contract


@dataclasses.dataclass(frozen=True)
class Family:
    """One plugin family: a name, its entry-point namespace, and where its contract lives."""

    name: str
    namespace: str
    contract_path: str  # "module:attribute"
    suite: str = ""  # the conformance suite module, e.g. "stackcore.testing.suites.compute"

    def contract(self) -> Contract:
        module, _, attr = self.contract_path.partition(":")
        contract = getattr(importlib.import_module(module), attr)
        assert isinstance(contract, Contract)
        return contract


FAMILIES: tuple[Family, ...] = (
    Family("compute", "stackcore.compute.drivers", "stackcore.compute.driver:CONTRACT",
           "stackcore.testing.suites.compute"),
    Family("volume", "stackcore.volume.drivers", "stackcore.volume.driver:CONTRACT",
           "stackcore.testing.suites.volume"),
    Family("network.type", "stackcore.network.type_drivers",
           "stackcore.network.type_driver:CONTRACT", "stackcore.testing.suites.network_type"),
    Family("network.mechanism", "stackcore.network.mechanism_drivers",
           "stackcore.network.mechanism_driver:CONTRACT",
           "stackcore.testing.suites.network_mechanism"),
    Family("network.agent", "stackcore.network.agents",
           "stackcore.network.agent_contract:CONTRACT"),
    Family("scheduler.compute_filters", "stackcore.scheduler.filters.compute",
           "stackcore.scheduler.filters.base:COMPUTE_CONTRACT",
           "stackcore.testing.suites.scheduler"),
    Family("scheduler.compute_weighers", "stackcore.scheduler.weighers.compute",
           "stackcore.scheduler.weighers.base:COMPUTE_CONTRACT",
           "stackcore.testing.suites.scheduler"),
    Family("scheduler.volume_filters", "stackcore.scheduler.filters.volume",
           "stackcore.scheduler.filters.base:VOLUME_CONTRACT",
           "stackcore.testing.suites.scheduler"),
    Family("scheduler.volume_weighers", "stackcore.scheduler.weighers.volume",
           "stackcore.scheduler.weighers.base:VOLUME_CONTRACT",
           "stackcore.testing.suites.scheduler"),
)


def get(name: str) -> Family:
    """The family called ``name``; raises ConfigError listing the known ones."""
    for family in FAMILIES:
        if family.name == name:
            return family
    from stackcore.exception import ConfigError

    known = ", ".join(f.name for f in FAMILIES)
    raise ConfigError(f"unknown plugin family {name!r} (known: {known})")
