"""The network family: ML2 (type and mechanism drivers), networks, subnets, ports, L2 agents.

The public surface for network plugin authors is what this package re-exports (a plugin imports
from ``stackcore.network``, :mod:`stackcore.network.agents` (the agents' RPC clients) and
:mod:`stackcore.exception`, nothing deeper):

* type drivers - :class:`TypeDriver`, :class:`Segment`, ``TYPE_CONTRACT``,
  :class:`RangedTypeDriver` (the base of a type whose IDs come from configured ranges);
* mechanism drivers - :class:`MechanismDriver`, the contexts they are handed
  (:class:`NetworkContext`, :class:`SubnetContext`, :class:`PortContext`), ``VIF_TYPE_*``,
  ``MECHANISM_CONTRACT``;
* L2 agents - :class:`L2AgentPlugin`, ``AGENT_CONTRACT``, ``AGENT_OPTS`` (``[agent]``);
* errors - :class:`SegmentIdInUse`, :class:`NoNetworkAvailable`, :class:`IpAddressExhausted`,
  :class:`MechanismDriverError`, :class:`PortBindingFailed`.

Inside the family: ``contracts/`` (the three contracts), ``ml2/`` (the core ML2 plugin: managers,
contexts, IPAM), ``types/`` and ``mechanisms/`` (the core's reference plugins), ``agents/`` (the
agents' RPC endpoints and clients), :mod:`~stackcore.network.api` (``cloud.network``),
:mod:`~stackcore.network.models` and ``migrations/``, :mod:`~stackcore.network.opts`,
:mod:`~stackcore.network.family`.
"""

from typing import TYPE_CHECKING, Any

from stackcore import lazy
from stackcore.network.contracts.agent import AGENT_OPTS, L2AgentPlugin
from stackcore.network.contracts.agent import CONTRACT as AGENT_CONTRACT
from stackcore.network.contracts.mechanism_driver import CONTRACT as MECHANISM_CONTRACT
from stackcore.network.contracts.mechanism_driver import (
    VIF_TYPE_BINDING_FAILED,
    VIF_TYPE_UNBOUND,
    MechanismDriver,
    NetworkContext,
    PortContext,
    SubnetContext,
)
from stackcore.network.contracts.type_driver import CONTRACT as TYPE_CONTRACT
from stackcore.network.contracts.type_driver import Segment, TypeDriver
from stackcore.network.exceptions import (
    IpAddressExhausted,
    MechanismDriverError,
    NoNetworkAvailable,
    PortBindingFailed,
    SegmentIdInUse,
)

if TYPE_CHECKING:
    from stackcore.network.types.ranged import RangedTypeDriver


def _ranged() -> Any:
    from stackcore.network.types.ranged import RangedTypeDriver

    return RangedTypeDriver


# RangedTypeDriver brings SQLAlchemy: imported when first used, not with the package.
__getattr__ = lazy.attributes(__name__, {"RangedTypeDriver": _ranged})

__all__ = [
    "AGENT_CONTRACT",
    "AGENT_OPTS",
    "MECHANISM_CONTRACT",
    "TYPE_CONTRACT",
    "VIF_TYPE_BINDING_FAILED",
    "VIF_TYPE_UNBOUND",
    "IpAddressExhausted",
    "L2AgentPlugin",
    "MechanismDriver",
    "MechanismDriverError",
    "NetworkContext",
    "NoNetworkAvailable",
    "PortBindingFailed",
    "PortContext",
    "RangedTypeDriver",
    "Segment",
    "SegmentIdInUse",
    "SubnetContext",
    "TypeDriver",
]
