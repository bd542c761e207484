"""Volume pool states: one frozen :class:`PoolState` per pool and the columnar
:class:`PoolSet` the whole-set volume filters and weighers read.

Capacity is *always* computed by the one shared formula, :mod:`stackcore.volume.capacity`:
the per-pool path calls it directly, and the set precomputes its answers per pool (headroom and
weight, thin and thick) into columns. ``consumed_gb`` is what has been claimed on the pool since
its last stats report (claims lower virtual free by exactly their size, Cinder's
``consume_from_volume``), so the scheduler's view equals the atomic claim's
(:mod:`stackcore.volume.claims`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

from stackcore.volume import capacity as formula

if TYPE_CHECKING:
    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]

_ARRAY_ALIASES = {"FloatArray": "float64", "BoolArray": "bool_"}

#: pool/backend stats keys that are load figures rather than capabilities
VOLATILE = frozenset({
    "total_capacity_gb", "free_capacity_gb", "allocated_capacity_gb", "provisioned_capacity_gb",
    "total_volumes", "pools", "unknown_objects",
})
#: backend-level stats every pool inherits as a capability
BACKEND_KEYS = ("volume_backend_name", "vendor_name", "driver_version", "storage_protocol")


@dataclasses.dataclass(frozen=True)
class PoolState:
    """What the scheduler knows of one pool (``name`` = ``<host>@<backend>#<pool>``)."""

    name: str
    backend: str = ""
    availability_zone: str = "nova"
    up: bool = False
    reporting: bool = False
    capacity: formula.Pool = dataclasses.field(
        default_factory=lambda: formula.Pool("unknown", "unknown"))
    consumed_gb: float = 0.0
    allocated_capacity_gb: float = 0.0
    volumes: int = 0
    capabilities: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_mosr: float | str = formula.DEFAULT_MOSR

    @property
    def host(self) -> str:  # the name the generic handler reports
        return self.name

    def headroom(self, thin: bool) -> float | None:
        """GiB still placeable (None: no limit), by the shared formula, minus claims since the
        last report."""
        room = formula.headroom(self.capacity, thin, self.default_mosr)
        return None if room is None else room - self.consumed_gb

    def weight(self, thin: bool) -> float:
        """CapacityWeigher's raw weight by the shared formula; -1 for keyword capacities."""
        if self.capacity.has_keyword:
            return formula.weight(self.capacity, thin, self.default_mosr)
        return formula.weight(self.capacity, thin, self.default_mosr) - self.consumed_gb


def capabilities_of(pool_stats: Mapping[str, Any],
                    backend_stats: Mapping[str, Any]) -> dict[str, Any]:
    """A pool's capabilities: backend-level names plus the pool's non-load figures."""
    caps = {k: backend_stats[k] for k in BACKEND_KEYS if k in backend_stats}
    caps.update({k: v for k, v in pool_stats.items() if k not in VOLATILE})
    return caps


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


class PoolSet:
    """Every candidate pool as columns: ``up``, ``reporting``, ``zone_code``/``zones``,
    ``caps_code``/``caps``, ``allocated_capacity_gb``, ``volumes``, and the shared formula's
    answers ``headroom_thin``/``headroom_thick`` (NaN = no limit) and
    ``weight_thin``/``weight_thick``, ``keyword`` (total or free is infinite/unknown)."""

    def __init__(self, states: Sequence[PoolState]) -> None:
        import numpy as np
        n = len(states)
        self.pools = list(states)
        self.names = [p.name for p in states]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.up: BoolArray = np.fromiter((p.up for p in states), bool, n)
        self.reporting: BoolArray = np.fromiter((p.reporting for p in states), bool, n)
        self.keyword: BoolArray = np.fromiter((p.capacity.has_keyword for p in states), bool, n)
        self.allocated_capacity_gb: FloatArray = np.fromiter(
            (p.allocated_capacity_gb for p in states), np.float64, n)
        self.volumes: FloatArray = np.fromiter((p.volumes for p in states), np.float64, n)
        self.headroom_thin: FloatArray = np.fromiter(
            (_nan_if_none(p.headroom(True)) for p in states), np.float64, n)
        self.headroom_thick: FloatArray = np.fromiter(
            (_nan_if_none(p.headroom(False)) for p in states), np.float64, n)
        self.weight_thin: FloatArray = np.fromiter((p.weight(True) for p in states), np.float64, n)
        self.weight_thick: FloatArray = np.fromiter(
            (p.weight(False) for p in states), np.float64, n)
        self.zones: list[str] = []
        self.caps: list[Mapping[str, Any]] = []
        zone_table: dict[str, int] = {}
        caps_table: dict[str, int] = {}
        self.zone_code = np.empty(n, np.int64)
        self.caps_code = np.empty(n, np.int64)
        for i, p in enumerate(states):
            if p.availability_zone not in zone_table:
                zone_table[p.availability_zone] = len(self.zones)
                self.zones.append(p.availability_zone)
            self.zone_code[i] = zone_table[p.availability_zone]
            key = json.dumps(p.capabilities, sort_keys=True, default=str)
            if key not in caps_table:
                caps_table[key] = len(self.caps)
                self.caps.append(p.capabilities)
            self.caps_code[i] = caps_table[key]

    @classmethod
    def from_states(cls, states: Iterable[PoolState]) -> PoolSet:
        return cls(sorted(states, key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self.names)

    def state(self, i: int) -> PoolState:
        return self.pools[i]

    def states(self) -> list[PoolState]:
        return list(self.pools)

    def headroom(self, thin: bool) -> FloatArray:
        return self.headroom_thin if thin else self.headroom_thick

    def weight(self, thin: bool) -> FloatArray:
        return self.weight_thin if thin else self.weight_thick


def __getattr__(name: str) -> Any:
    # The array aliases need numpy; they are built on first use so importing this module (every
    # plugin does, at load time) does not import numpy.
    if name in _ARRAY_ALIASES:
        import numpy as np
        import numpy.typing as npt

        generic: Any = npt.NDArray
        alias = generic[getattr(np, _ARRAY_ALIASES[name])]
        globals()[name] = alias
        return alias
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
