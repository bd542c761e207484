"""The L2 agent contract: what the Cloud needs to run an agent inside its own process.

An L2 agent wires one host's backend (OVS bridges and flows, kernel bridges and vxlan devices)
to match the ports bound to that host. In a split deployment each host runs its agent's console
script; in the embedded default (one process, in-process RPC) the Cloud runs the agents named in
``[network] local_agents`` itself, found through the ``stackcore.network.agents`` entry points
and verified against this contract like any driver.

The agent talks to the server only over RPC (state reports and the agent RPC of
:mod:`stackcore.network.agents.rpc`); it never opens the database.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

NAMESPACE = "stackcore.network.agents"


class L2AgentPlugin(abc.ABC):
    """Base class of every L2 agent (the loader refuses a class that does not subclass it)."""

    VERSION: ClassVar[str] = ""
    #: The ``agent_type`` it reports, matched by its mechanism driver when binding ports.
    AGENT_TYPE: ClassVar[str] = ""

    @abc.abstractmethod
    def __init__(self, conf: cfg.ConfigOpts, transport: Transport) -> None:
        """Build the agent for host ``conf.host``; connect nothing yet. ``conf`` already has
        the groups of :meth:`list_opts` registered."""

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The agent's options as ``[(group, [opts])]``."""
        return []

    @abc.abstractmethod
    def start(self) -> None:
        """Begin reporting state and reconciling the host in a background thread; returns at
        once. The first reconciliation is a full resync."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the thread; leaves the host's wiring in place (a restart resyncs it)."""


def _agent_type_declared(cls: type) -> list[str]:
    agent_type = getattr(cls, "AGENT_TYPE", None)
    return [] if isinstance(agent_type, str) and agent_type else ["AGENT_TYPE is not set"]


CONTRACT = Contract(
    family="network.agent",
    base=L2AgentPlugin,
    required=("__init__", "start", "stop"),
    extra_checks=(_agent_type_declared,),
)
