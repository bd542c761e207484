"""The L2 agent contract: what the Cloud needs to run an agent inside its own process.

An L2 agent wires one host's backend (OVS bridges and flows, kernel bridges and vxlan devices)
to match the ports bound to that host. In a split deployment each host runs its agent's console
script; in the embedded default (one process, in-process RPC) the Cloud runs the agents named in
``[network] local_agents`` itself, found through the ``stackcore.network.agents`` entry points
and verified against this contract like any driver.

The agent talks to the server only over RPC (state reports and the agent RPC of
:mod:`stackcore.network.agents.rpc`); it never opens the database.

What the conformance suite (:mod:`stackcore.testing.suites.network_agent`) checks: it reports
its state once started and stops reporting once stopped; a port bound to its host whose device
the hypervisor plugged is wired and reported ACTIVE; an administratively down port is unwired
and reported DOWN; a deleted port is unwired; a stopped agent leaves the wiring in place and a
new one resyncs. It observes the backend through the agent's test hooks below.

Capability ``security_groups`` (declared in ``capabilities``, implemented by
:meth:`L2AgentPlugin.test_ping`): the agent enforces its ports' security groups (the agent
RPC's ``security_group_rules_for_devices``); the suite checks on the backend's data path that
two ports in a group without ingress rules cannot ping each other, that an ICMP rule lets them
(statefully), that removing it stops them, and that a port without port security is not
filtered.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

NAMESPACE = "stackcore.network.agents"

#: ``[agent]``: the two intervals every agent runs by (its ``list_opts`` includes this group).
#: The server checks ``[network] agent_down_time`` against ``report_interval`` for the agents
#: it runs itself; the conformance configuration shortens both. (The drivers' L2 agents define
#: the same options, equal to these, so both can be registered on one configuration.)
AGENT_OPTS = lazy.options(lambda cfg: [
    cfg.FloatOpt("report_interval", default=30.0, min=0.1,
                 help="Seconds between two state reports (heartbeats). Keep it at most a third "
                      "of the server's [network] agent_down_time."),
    cfg.FloatOpt("polling_interval", default=2.0, min=0.1,
                 help="Seconds between two reconciliations of the host's backend with the "
                      "database."),
])


class L2AgentPlugin(abc.ABC):
    """Base class of every L2 agent (the loader refuses a class that does not subclass it)."""

    VERSION: ClassVar[str] = ""
    #: The ``agent_type`` it reports, matched by its mechanism driver when binding ports.
    AGENT_TYPE: ClassVar[str] = ""
    #: Optional capabilities (``security_groups``) the agent declares.
    capabilities: ClassVar[dict[str, bool]] = {}

    @abc.abstractmethod
    def __init__(self, conf: cfg.ConfigOpts, transport: Transport) -> None:
        """Build the agent for host ``conf.host``; connect nothing yet. ``conf`` already has
        the groups of :meth:`list_opts` registered."""

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The agent's options as ``[(group, [opts])]``: ``[agent]`` (:data:`AGENT_OPTS`)
        plus the agent's own groups."""
        return [("agent", AGENT_OPTS)]

    @abc.abstractmethod
    def start(self) -> None:
        """Begin reporting state and reconciling the host in a background thread; returns at
        once. The first reconciliation is a full resync."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the thread; leaves the host's wiring in place (a restart resyncs it)."""

    # --- observation (conformance kit) -----------------------------------------------------
    # What the kit needs to check an agent on its backend rather than on its word. Not called
    # by the Cloud; an agent without them loads and runs, but fails the conformance suite
    # saying which to implement.

    def plug_test_device(self, port: Mapping[str, Any]) -> None:
        """Do on this host what the hypervisor's VIF plugging does for a port bound to it
        (``port``: ``id``, ``mac_address``, ``vif_type``, ``vif_details``): create the tap
        device, add the OVS port with ``external_ids:iface-id`` ... The agent must then wire
        it."""
        raise exception.CapabilityNotSupported(type(self).__name__, "plug_test_device")

    def unplug_test_device(self, port: Mapping[str, Any]) -> None:
        """Undo :meth:`plug_test_device` (the instance went away)."""
        raise exception.CapabilityNotSupported(type(self).__name__, "unplug_test_device")

    def wired_ports(self) -> set[str]:
        """Ids of the ports whose traffic the host's backend passes now, **read from the
        backend** (OVSDB, the kernel), not from the agent's memory."""
        raise exception.CapabilityNotSupported(type(self).__name__, "wired_ports")

    def test_ping(self, port: Mapping[str, Any], address: str) -> bool:
        """Capability ``security_groups``: send one ICMP echo request from the device
        :meth:`plug_test_device` made for ``port`` (``id``, ``mac_address``, ``fixed_ips``:
        it sends from the port's MAC and first fixed IP) to ``address``, through the host's
        real data path, and say whether the reply came back within a second."""
        raise exception.CapabilityNotSupported(type(self).__name__, "test_ping")


def _agent_type_declared(cls: type) -> list[str]:
    agent_type = getattr(cls, "AGENT_TYPE", None)
    return [] if isinstance(agent_type, str) and agent_type else ["AGENT_TYPE is not set"]


CONTRACT = Contract(
    family="network.agent",
    base=L2AgentPlugin,
    required=("__init__", "start", "stop"),
    capabilities={"security_groups": ("test_ping",)},
    extra_checks=(_agent_type_declared,),
)
