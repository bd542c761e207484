"""The one capacity formula: used by volume placement, the atomic claims, the scheduler's
capacity filter and weigher, and the tests.

Cinder semantics (``sched_utils.calculate_capacity_factors`` / ``CapacityFilter`` /
``CapacityWeigher``), with its documented quirks pinned deliberately:

* free ``infinite``/``unknown`` -> the pool fits any request (failures are handled at create);
  total ``infinite``/``unknown`` -> fits only when ``reserved_percentage == 0``;
  either keyword -> weight -1 (the lowest) and over-subscription ratio 1.0;
* ``reserved = floor(total * reserved% / 100)``, ``tra = total - reserved``;
* thin request on a thin-capable pool: ``total_available = tra * mosr``,
  ``virtual_free = total_available - provisioned``;
* thick (or a pool without thin support): ``virtual_free = min(tra - provisioned, free)``
  (Cinder compares with raw free, not free - reserved: kept for compatibility);
* ``provisioned`` defaults to ``allocated`` when the driver does not report it;
* ``mosr = auto``: ``1 + provisioned / (total - free + 1)``, or 20 when nothing is provisioned.

The request fits when ``virtual_free >= requested``. Cinder's extra thin check
``(provisioned + requested) / total_available > mosr`` is implied by it (total_available
already includes mosr) and is not repeated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

KEYWORDS = ("infinite", "unknown")
DEFAULT_MOSR = 20.0


@dataclasses.dataclass(frozen=True)
class Pool:
    """The capacity-relevant figures of one pool (from its validated stats)."""

    total_capacity_gb: float | str
    free_capacity_gb: float | str
    reserved_percentage: int = 0
    allocated_capacity_gb: float = 0.0
    provisioned_capacity_gb: float | None = None
    thin_provisioning_support: bool = False
    thick_provisioning_support: bool = False
    max_over_subscription_ratio: float | str | None = None

    @classmethod
    def from_stats(cls, pool: Mapping[str, Any], allocated: float = 0.0) -> Pool:
        return cls(
            total_capacity_gb=pool["total_capacity_gb"],
            free_capacity_gb=pool["free_capacity_gb"],
            reserved_percentage=int(pool.get("reserved_percentage", 0)),
            allocated_capacity_gb=float(pool.get("allocated_capacity_gb", allocated)),
            provisioned_capacity_gb=pool.get("provisioned_capacity_gb"),
            thin_provisioning_support=bool(pool.get("thin_provisioning_support", False)),
            thick_provisioning_support=bool(pool.get("thick_provisioning_support", False)),
            max_over_subscription_ratio=pool.get("max_over_subscription_ratio"),
        )

    @property
    def has_keyword(self) -> bool:
        return self.total_capacity_gb in KEYWORDS or self.free_capacity_gb in KEYWORDS

    @property
    def provisioned(self) -> float:
        if self.provisioned_capacity_gb is None:
            return self.allocated_capacity_gb
        return float(self.provisioned_capacity_gb)


@dataclasses.dataclass(frozen=True)
class Factors:
    total_available: float
    virtual_free: float
    reserved: float
    mosr: float


def max_over_subscription_ratio(pool: Pool, default: float | str = DEFAULT_MOSR) -> float:
    """The effective ratio: 1.0 without thin support or with a keyword capacity."""
    if not pool.thin_provisioning_support or pool.has_keyword:
        return 1.0
    value = pool.max_over_subscription_ratio
    if value is None:
        value = default
    if value == "auto":
        total, free = float(pool.total_capacity_gb), float(pool.free_capacity_gb)
        if pool.provisioned == 0:
            return DEFAULT_MOSR
        return 1 + pool.provisioned / (total - free + 1)
    return float(value)


def factors(pool: Pool, thin: bool, default_mosr: float | str = DEFAULT_MOSR) -> Factors | None:
    """Cinder's capacity factors; None when total or free is a keyword."""
    if pool.has_keyword:
        return None
    total = float(pool.total_capacity_gb)
    free = float(pool.free_capacity_gb)
    reserved = math.floor(total * pool.reserved_percentage / 100)
    tra = total - reserved
    mosr = max_over_subscription_ratio(pool, default_mosr)
    if thin and pool.thin_provisioning_support:
        total_available = tra * mosr
        virtual_free = total_available - pool.provisioned
    else:
        total_available = tra
        virtual_free = min(tra - pool.provisioned, free)
    return Factors(total_available, virtual_free, reserved, mosr)


def headroom(pool: Pool, thin: bool, default_mosr: float | str = DEFAULT_MOSR) -> float | None:
    """How many GiB may still be placed on the pool; None = no limit; negative = refuse all.

    This is what the atomic claim stores at report time: each claim consumes its size from it
    (Cinder's ``consume_from_volume`` lowers virtual free by exactly the size, thin or thick).
    """
    if pool.free_capacity_gb in KEYWORDS and pool.total_capacity_gb not in KEYWORDS:
        return None
    if pool.total_capacity_gb in KEYWORDS:
        return None if pool.reserved_percentage == 0 else -1.0
    if thin and pool.thin_provisioning_support:
        if max_over_subscription_ratio(pool, default_mosr) < 1:
            return -1.0
    if float(pool.total_capacity_gb) <= 0:
        return -1.0
    f = factors(pool, thin, default_mosr)
    assert f is not None
    return f.virtual_free


def fits(
    pool: Pool, requested_gb: float, thin: bool, default_mosr: float | str = DEFAULT_MOSR
) -> tuple[bool, str]:
    """Whether ``requested_gb`` fits the pool, and a sentence saying why not."""
    if requested_gb <= 0:
        return True, ""
    room = headroom(pool, thin, default_mosr)
    if room is None:
        return True, ""
    if pool.total_capacity_gb in KEYWORDS:
        return False, (f"total capacity is {pool.total_capacity_gb!r} with reserved "
                       f"{pool.reserved_percentage}%")
    if room >= requested_gb:
        return True, ""
    kind = "thin" if thin and pool.thin_provisioning_support else "thick"
    return False, f"needs {requested_gb} GiB ({kind}), virtual free is {max(room, 0):.2f} GiB"


def weight(pool: Pool, thin: bool, default_mosr: float | str = DEFAULT_MOSR) -> float:
    """CapacityWeigher's weight (spread): virtual free; -1 for keyword capacities."""
    f = factors(pool, thin, default_mosr)
    return -1.0 if f is None else f.virtual_free
