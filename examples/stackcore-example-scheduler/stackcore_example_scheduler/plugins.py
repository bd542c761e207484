"""``MaintenanceFilter`` and ``FewestInstancesWeigher``: compute-host placement plugins.

Each has the per-host reference path and the whole-set path (numpy columns of the host set),
declares ``whole_set`` for it, and the conformance kit checks both agree on random host sets.
A filter always says why it rejected a host (``reason``), in words, without the host's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from stackcore.compute.placement.filters import HostFilter
from stackcore.compute.placement.weighers import HostWeigher
from stackcore.scheduler.filters.base import by_code

MAINTENANCE_KEY = "maintenance"


def _in_maintenance(aggregate_metadata: Mapping[str, Any]) -> bool:
    return "true" in {str(v).lower() for v in aggregate_metadata.get(MAINTENANCE_KEY, ())}


class MaintenanceFilter(HostFilter):
    """Rejects hosts in an aggregate whose metadata says ``maintenance=true``."""

    VERSION = "1.0.0"
    capabilities: ClassVar[Mapping[str, bool]] = {"whole_set": True}
    run_filter_once_per_request = True  # the answer does not depend on the request

    def host_passes(self, host_state: Any, request: Any) -> bool:
        return not _in_maintenance(host_state.aggregate_metadata)

    def filter_all(self, hosts: Any, request: Any) -> Any:
        return by_code(hosts.agg_code, hosts.aggs, lambda meta: not _in_maintenance(meta))

    def reason(self, host_state: Any, request: Any) -> str:
        return "its aggregate is in maintenance"


class FewestInstancesWeigher(HostWeigher):
    """Prefers hosts holding fewer instances (weight: minus the instance count)."""

    VERSION = "1.0.0"
    capabilities: ClassVar[Mapping[str, bool]] = {"whole_set": True}

    def weigh_object(self, host_state: Any, request: Any) -> float:
        return -float(host_state.num_instances)

    def weigh_all(self, hosts: Any, request: Any) -> Any:
        return -np.asarray(hosts.num_instances, np.float64)
