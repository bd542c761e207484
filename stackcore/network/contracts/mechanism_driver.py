"""The mechanism driver contract: realising networks, subnets and ports on a backend.

This module *is* the specification a mechanism driver is written against (the shape is
neutron-lib's ``plugins/ml2/api.py``; the failure semantics are stricter and stated below).
Drivers register under the ``stackcore.network.mechanism_drivers`` namespace and run in the
order of ``[ml2] mechanism_drivers``.

Lifecycle hooks, ``{create,update,delete}_{network,subnet,port}_{precommit,postcommit}``:

``*_precommit``
    Runs **inside** the database transaction that makes the change, after the change is
    flushed (``context.current`` is what will be committed). Use it to validate and to write
    the driver's own rows through nothing but the data given; never block and never call the
    backend. Raising aborts the call: the transaction rolls back, later drivers are not called,
    and the caller gets :class:`~stackcore.network.exceptions.MechanismDriverError`.
``*_postcommit``
    Runs **after** commit, outside any transaction; this is where the backend is called. It
    may block (briefly: the caller waits). What raising means depends on the operation:

    * ``create_*_postcommit``: the resource is deleted again (every driver's delete hooks run,
      so the drivers can remove what they half made) and the caller gets the error. Later
      drivers are not called for the create.
    * ``update_*_postcommit``: every driver is still called. The new state **stays stored**
      (each driver's precommit accepted it) but the resource's ``status`` becomes ``ERROR``
      and a fault naming the driver is recorded; the caller gets the error. The next update
      that succeeds on every driver clears the ERROR status. (Neutron keeps the change too but
      only logs the failure, so backends drift silently; here it is visible.)
    * ``delete_*_postcommit``: the resource is gone whatever happens; every driver is called
      (in reverse order for ports, nearest-host binding first) and each failure is recorded as
      a fault (``cloud.network.list_faults``), not raised.

Contexts give ``current`` (the resource as a plain dict), ``original`` (its state before an
update; None otherwise) and the related network. Drivers must not modify these dicts.

Port binding (:meth:`MechanismDriver.bind_port`) runs outside any transaction when a port has
a host and is not bound. It must be **side-effect free and repeatable**: the result may be
discarded and binding retried when the port changes concurrently. A driver either binds a
segment (:meth:`PortContext.set_binding`), binds part of the path and hands the rest to the
next level (:meth:`PortContext.continue_binding`, hierarchical binding, bounded by
``[ml2] max_binding_levels``), or says why not (:meth:`PortContext.refuse`), per segment.
When no driver binds, the port gets ``vif_type = binding_failed`` and every refusal is stored
and readable as ``port.binding_failures`` -
e.g. ``"openvswitch: segment vlan/data/100: no live agent on host h1"``. A driver that returns
without binding or refusing is recorded as "did not bind (no reason given)".
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

NAMESPACE = "stackcore.network.mechanism_drivers"

#: ``vif_type`` of a port without a host or not yet bound, and of one no driver could bind.
VIF_TYPE_UNBOUND = "unbound"
VIF_TYPE_BINDING_FAILED = "binding_failed"

CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    # The driver binds ports (overrides bind_port). Drivers without it are only notified.
    "bind_port": ("bind_port",),
}


class NetworkContext(abc.ABC):
    """A network as mechanism drivers see it."""

    @property
    @abc.abstractmethod
    def current(self) -> Mapping[str, Any]:
        """The network: ``id``, ``name``, ``admin_state_up``, ``status``, ``mtu``,
        ``segments`` (same as :attr:`network_segments`)."""

    @property
    @abc.abstractmethod
    def original(self) -> Mapping[str, Any] | None:
        """The network before the update (update hooks only), else None."""

    @property
    @abc.abstractmethod
    def network_segments(self) -> Sequence[Mapping[str, Any]]:
        """The segments: dicts with ``id``, ``network_type``, ``physical_network``,
        ``segmentation_id``, ``mtu``, in segment order."""


class SubnetContext(abc.ABC):
    """A subnet as mechanism drivers see it."""

    @property
    @abc.abstractmethod
    def current(self) -> Mapping[str, Any]:
        """The subnet: ``id``, ``network_id``, ``name``, ``ip_version``, ``cidr``,
        ``gateway_ip``, ``allocation_pools`` (``[{"start", "end"}]``), ``enable_dhcp``."""

    @property
    @abc.abstractmethod
    def original(self) -> Mapping[str, Any] | None:
        """The subnet before the update (update hooks only), else None."""

    @property
    @abc.abstractmethod
    def network(self) -> NetworkContext:
        """The subnet's network."""


class PortContext(abc.ABC):
    """A port, its binding, and (inside :meth:`MechanismDriver.bind_port`) the binding API."""

    @property
    @abc.abstractmethod
    def current(self) -> Mapping[str, Any]:
        """The port: ``id``, ``network_id``, ``name``, ``mac_address``, ``fixed_ips``
        (``[{"subnet_id", "ip_address"}]``), ``device_id``, ``device_owner``, ``status``,
        ``admin_state_up``, ``binding:host_id``, ``binding:vnic_type``, ``binding:profile``,
        ``binding:vif_type``, ``binding:vif_details``."""

    @property
    @abc.abstractmethod
    def original(self) -> Mapping[str, Any] | None:
        """The port before the update (update hooks only), else None."""

    @property
    @abc.abstractmethod
    def network(self) -> NetworkContext:
        """The port's network."""

    @property
    @abc.abstractmethod
    def host(self) -> str:
        """``binding:host_id`` ("" when unset)."""

    @property
    @abc.abstractmethod
    def original_host(self) -> str | None:
        """The host before the update (update hooks only)."""

    @property
    @abc.abstractmethod
    def vif_type(self) -> str:
        """The bound VIF type, ``unbound`` or ``binding_failed``."""

    @property
    @abc.abstractmethod
    def vif_details(self) -> Mapping[str, Any]:
        """The bound VIF details (empty when not bound)."""

    @property
    @abc.abstractmethod
    def binding_levels(self) -> Sequence[Mapping[str, Any]]:
        """``[{"bound_driver", "bound_segment"}]``; index 0 is nearest the fabric, -1 nearest
        the host (the level whose driver set vif_type)."""

    @property
    @abc.abstractmethod
    def original_binding_levels(self) -> Sequence[Mapping[str, Any]] | None:
        """The binding levels before the update (update hooks only)."""

    @property
    @abc.abstractmethod
    def top_bound_segment(self) -> Mapping[str, Any] | None:
        """The segment bound at level 0, or None when unbound."""

    @property
    @abc.abstractmethod
    def bottom_bound_segment(self) -> Mapping[str, Any] | None:
        """The segment bound at the last level, or None when unbound."""

    @property
    @abc.abstractmethod
    def segments_to_bind(self) -> Sequence[Mapping[str, Any]]:
        """Inside bind_port only: the segments this level may bind, in order."""

    @abc.abstractmethod
    def host_agents(self, agent_type: str) -> list[dict[str, Any]]:
        """The agents of ``agent_type`` registered on this port's host: dicts with ``id``,
        ``agent_type``, ``host``, ``configurations``, ``heartbeat_at`` and ``alive`` (reported
        within ``[network] agent_down_time``). Read-only."""

    @abc.abstractmethod
    def set_binding(
        self,
        segment_id: str,
        vif_type: str,
        vif_details: Mapping[str, Any],
        status: str | None = None,
    ) -> None:
        """Inside bind_port only: bind ``segment_id`` (one of :attr:`segments_to_bind`) at
        this level with ``vif_type``/``vif_details`` (JSON types); ``status`` optionally sets
        the port status (e.g. ``ACTIVE`` when no agent will report the device up)."""

    @abc.abstractmethod
    def continue_binding(
        self, segment_id: str, next_segments_to_bind: Sequence[Mapping[str, Any]]
    ) -> None:
        """Inside bind_port only: bind ``segment_id`` at this level and ask the next level to
        bind one of ``next_segments_to_bind`` (segments of this network)."""

    @abc.abstractmethod
    def refuse(self, reason: str, segment_id: str | None = None) -> None:
        """Inside bind_port only: record why this driver does not bind ``segment_id`` (or any
        segment, when None). The reason is a short sentence shown to the user as
        ``"<driver>: segment <type/physnet/id>: <reason>"``."""


class MechanismDriver(abc.ABC):
    """Base class of every mechanism driver. Every hook is an optional no-op.

    Class attributes: ``VERSION`` (string) and ``capabilities`` (keys of
    :data:`CAPABILITIES`). A driver is built once per plugin as ``Driver(conf)`` with the
    options of :meth:`list_opts` registered, then :meth:`initialize` is called.
    """

    VERSION: ClassVar[str] = ""
    capabilities: ClassVar[Mapping[str, bool]] = {}
    #: The type of the L2 agent that wires the ports this driver binds (``"Open vSwitch
    #: agent"``), or None when no agent does: the agent RPC
    #: (:mod:`stackcore.network.agents.rpc`) hands an agent the ports bound by drivers of its
    #: type.
    AGENT_TYPE: ClassVar[str | None] = None

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The driver's own config options as ``[(group, [opts])]``."""
        return []

    @abc.abstractmethod
    def initialize(self) -> None:
        """Called once after every driver is loaded and the schema is migrated, before any
        hook. Check configuration here (raise ConfigError); raising aborts start-up."""

    def create_network_precommit(self, context: NetworkContext) -> None:
        """Inside the create transaction; raising rolls the create back."""

    def create_network_postcommit(self, context: NetworkContext) -> None:
        """After commit; raising deletes the network again and fails the create."""

    def update_network_precommit(self, context: NetworkContext) -> None:
        """Inside the update transaction; raising rolls the update back."""

    def update_network_postcommit(self, context: NetworkContext) -> None:
        """After commit; raising keeps the change, sets status ERROR, records a fault."""

    def delete_network_precommit(self, context: NetworkContext) -> None:
        """Inside the delete transaction, after the ``delete_subnet_precommit`` of each of its
        subnets (deleted in the same transaction); raising aborts the whole delete (the
        network and its subnets stay)."""

    def delete_network_postcommit(self, context: NetworkContext) -> None:
        """After the network is gone, after the ``delete_subnet_postcommit`` of each of its
        subnets; raising is recorded as a fault."""

    def create_subnet_precommit(self, context: SubnetContext) -> None:
        """Inside the create transaction; raising rolls the create back."""

    def create_subnet_postcommit(self, context: SubnetContext) -> None:
        """After commit; raising deletes the subnet again and fails the create."""

    def update_subnet_precommit(self, context: SubnetContext) -> None:
        """Inside the update transaction; raising rolls the update back."""

    def update_subnet_postcommit(self, context: SubnetContext) -> None:
        """After commit; raising keeps the change and records a fault."""

    def delete_subnet_precommit(self, context: SubnetContext) -> None:
        """Inside the delete transaction (of the subnet, or of its network); raising aborts
        the delete."""

    def delete_subnet_postcommit(self, context: SubnetContext) -> None:
        """After the subnet is gone; raising is recorded as a fault."""

    def create_port_precommit(self, context: PortContext) -> None:
        """Inside the create transaction (IPs and MAC allocated); raising rolls back."""

    def create_port_postcommit(self, context: PortContext) -> None:
        """After commit, before binding; raising deletes the port again."""

    def update_port_precommit(self, context: PortContext) -> None:
        """Inside the update transaction, also when a binding result is committed;
        raising rolls back."""

    def update_port_postcommit(self, context: PortContext) -> None:
        """After commit; raising keeps the change, sets status ERROR, records a fault."""

    def delete_port_precommit(self, context: PortContext) -> None:
        """Inside the delete transaction; raising aborts the delete."""

    def delete_port_postcommit(self, context: PortContext) -> None:
        """After the port is gone; called in reverse order; raising is recorded as a fault."""

    def bind_port(self, context: PortContext) -> None:
        """Try to bind the port at ``context``'s level (see the module doc). Outside any
        transaction; side-effect free; raising counts as a refusal with the error as reason.
        Capability: ``bind_port``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "bind_port")


def _init_accepts_conf(cls: type) -> list[str]:
    from stackcore.plugins.contract import signature_problems

    init = cls.__init__  # type: ignore[misc]
    return [f"__init__(): {p}" for p in signature_problems(MechanismDriver.__init__, init)]


#: Every lifecycle hook, so the loader checks the signature of each one a driver overrides.
HOOKS: tuple[str, ...] = tuple(
    f"{action}_{resource}_{phase}"
    for resource in ("network", "subnet", "port")
    for action in ("create", "update", "delete")
    for phase in ("precommit", "postcommit")
)

CONTRACT = Contract(
    family="network.mechanism",
    base=MechanismDriver,
    required=("initialize", *HOOKS),
    capabilities=CAPABILITIES,
    extra_checks=(_init_accepts_conf,),
)
