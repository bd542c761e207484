"""Volume pool states: one frozen :class:`PoolState` per pool and the columnar
:class:`PoolSet` the whole-set volume filters and weighers read.

Capacity is *always* computed by the one shared formula, :mod:`stackcore.volume.placement.capacity`:
the per-pool path calls it directly, and the set precomputes its answers per pool (headroom and
weight, thin and thick) into columns. ``consumed_gb`` is what has been claimed on the pool since
its last stats report (claims lower virtual free by exactly their size, Cinder's
``consume_from_volume``), so the scheduler's view equals the atomic claim's
(:mod:`stackcore.volume.placement.claims`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore.scheduler.columns import encode, json_key
from stackcore.volume.placement import capacity as formula

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from stackcore.scheduler.arrays import BoolArray, FloatArray

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
        self.zone_code, self.zones = encode([p.availability_zone for p in states])
        self.caps_code, self.caps = encode([p.capabilities for p in states], json_key)

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


def pool_rows(session: Session) -> list[Any]:
    """Every present pool with its backend and volume service: ``(VolumePool, VolumeBackend,
    Service)`` rows ordered by pool name - the one query behind the scheduler's pool states and
    ``cloud.volume.list_pools``."""
    import sqlalchemy as sa

    from stackcore.db.models import Service
    from stackcore.volume import models
    from stackcore.volume.family import VOLUME_BINARY

    pool, backend = models.VolumePool, models.VolumeBackend
    return list(session.execute(
        sa.select(pool, backend, Service)
        .join(backend, backend.host == pool.host)
        .join(Service, sa.and_(Service.host == pool.host, Service.binary == VOLUME_BINARY))
        .where(pool.present.is_(True))
        .order_by(pool.host, pool.pool_name)
    ).all())
