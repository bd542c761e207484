"""The type driver contract: how a network is segmented (flat, VLAN, VXLAN ...).

This module *is* the specification a type driver is written against. A type driver owns the
allocation of one network type's segmentation IDs; its backend is the SQL database, reached
only through the session the ML2 plugin hands it, so type drivers are backend-free and ship in
the core, registered under the ``stackcore.network.type_drivers`` entry-point namespace.

A **segment** is a plain dict with the keys ``network_type`` (str), ``physical_network``
(str or None), ``segmentation_id`` (int or None) and, once reserved, ``mtu`` (int). A *partial*
segment leaves ``segmentation_id`` (VLAN, VXLAN) None: the driver picks the ID.

Rules for every method:

* ``validate_provider_segment`` runs **outside** any transaction, before anything is written;
  every other database method runs **inside** the plugin's transaction (``session``): raising
  rolls the whole operation back, and nothing a driver writes is visible before commit.
* Allocation must be atomic under concurrency, across processes on PostgreSQL: two
  transactions never get the same ID. The plugin retries an operation that failed on a
  database deadlock or serialization error.
* Start-up cost (:meth:`TypeDriver.initialize`) must not grow with the *size* of the
  configured ranges; :mod:`stackcore.network.types.segments` provides free-range storage that meets
  this and the previous rule.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

NAMESPACE = "stackcore.network.type_drivers"

Segment = dict[str, Any]

#: IP (v4) + UDP + VXLAN + inner Ethernet header: what VXLAN costs on the underlay MTU.
VXLAN_OVERHEAD = 20 + 30


class TypeDriver(abc.ABC):
    """Base class of every type driver.

    Class attributes a driver sets: ``VERSION`` (its version string) and ``capabilities``
    (none are defined for this family yet). A driver is built once per plugin as
    ``Driver(conf)``, ``conf`` being the cloud's ConfigOpts with the options of
    :meth:`list_opts` registered.
    """

    VERSION: ClassVar[str] = ""
    capabilities: ClassVar[Mapping[str, bool]] = {}

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The driver's own options (the core drivers' options are core options)."""
        return []

    @abc.abstractmethod
    def get_type(self) -> str:
        """The network type this driver handles (``flat``, ``vlan``, ``vxlan`` ...): the value
        of a segment's ``network_type`` and of ``[ml2] project_network_types`` entries. Two
        loaded drivers returning the same type is a configuration error."""

    @abc.abstractmethod
    def initialize(self, session: Session) -> None:
        """Parse and check the driver's configuration, then reconcile the ID pool with it.

        Called once when the plugin starts, after the schema is migrated, inside a transaction
        of its own. Raise :class:`~stackcore.exception.ConfigError` naming the option for bad
        configuration. Several processes may start at once; the reconciliation must be
        idempotent and safe to run concurrently. IDs in use that fall outside new ranges stay
        allocated."""

    @abc.abstractmethod
    def is_partial_segment(self, segment: Segment) -> bool:
        """True if the driver must choose part of the segment (its ID) on reservation."""

    @abc.abstractmethod
    def validate_provider_segment(self, segment: Segment) -> Segment:
        """Check a provider segment's attributes and return it normalised.

        Runs outside any transaction, before anything is written. Raise
        :class:`~stackcore.exception.Invalid` with ``field`` set to the culprit
        (``physical_network``, ``segmentation_id``) for a missing, forbidden or out-of-range
        attribute. Availability is not checked here (that is reservation's job)."""

    @abc.abstractmethod
    def reserve_provider_segment(self, session: Session, segment: Segment) -> Segment:
        """Allocate a validated provider segment; return it complete, with ``mtu``.

        Inside the transaction. A fully specified ID is reserved whether or not it lies in the
        configured ranges; one already in use raises
        :class:`~stackcore.network.exceptions.SegmentIdInUse`. A partial segment gets a free
        ID from the pool of its physical network, or raises
        :class:`~stackcore.network.exceptions.NoNetworkAvailable` when there is none."""

    @abc.abstractmethod
    def allocate_tenant_segment(self, session: Session) -> Segment | None:
        """Allocate a segment for a project network from the configured ranges, with ``mtu``.

        Inside the transaction. Return None when the pool is exhausted or the type is never
        used for project networks (the plugin then tries the next project network type)."""

    @abc.abstractmethod
    def release_segment(self, session: Session, segment: Segment) -> None:
        """Free a segment's ID. Inside the transaction (raising rolls the delete back).

        An ID inside the configured ranges goes back to the pool, reusable at once; one outside
        is forgotten. Releasing an ID that is not allocated does nothing."""

    @abc.abstractmethod
    def get_mtu(self, physical_network: str | None) -> int:
        """The MTU of a segment of this type on ``physical_network`` (None for overlays),
        from ``[network] global_physnet_mtu``, ``[ml2] path_mtu`` and
        ``[ml2] physical_network_mtus``. 0 means unknown."""

    @abc.abstractmethod
    def get_usage(self, session: Session) -> dict[str, Any]:
        """Usage statistics meeting :data:`stackcore.network.stats.TYPE_USAGE_SCHEMA`: per
        physical network and configured range, ``total``, ``allocated`` and ``free`` IDs, plus
        IDs allocated outside the ranges. Read-only, inside a transaction."""


def mtu_for_physnet(conf: cfg.ConfigOpts, physical_network: str | None) -> int:
    """``min(global_physnet_mtu, physical_network_mtus[physnet])`` (flat and VLAN segments)."""
    mtus = physical_network_mtus(conf)
    candidates = [conf.network.global_physnet_mtu]
    if physical_network in mtus:
        candidates.append(mtus[physical_network])
    return min(m for m in candidates if m > 0) if any(m > 0 for m in candidates) else 0


def physical_network_mtus(conf: cfg.ConfigOpts) -> dict[str, int]:
    """``[ml2] physical_network_mtus`` parsed; ConfigError naming the bad entry otherwise."""
    result = {}
    for physnet, raw in (conf.ml2.physical_network_mtus or {}).items():
        try:
            mtu = int(raw)
        except (TypeError, ValueError):
            mtu = -1
        if mtu < 68:
            raise exception.ConfigError(
                f"[ml2] physical_network_mtus: MTU {raw!r} of physical network {physnet!r} is "
                "not an integer >= 68"
            )
        result[physnet] = mtu
    return result


def _init_accepts_conf(cls: type) -> list[str]:
    from stackcore.plugins.contract import signature_problems

    init = cls.__init__  # type: ignore[misc]
    return [f"__init__(): {p}" for p in signature_problems(TypeDriver.__init__, init)]


CONTRACT = Contract(
    family="network.type",
    base=TypeDriver,
    required=(
        "get_type",
        "initialize",
        "is_partial_segment",
        "validate_provider_segment",
        "reserve_provider_segment",
        "allocate_tenant_segment",
        "release_segment",
        "get_mtu",
        "get_usage",
    ),
    extra_checks=(_init_accepts_conf,),
)
