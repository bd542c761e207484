"""The network family's descriptor and its runtime in a Cloud (see :mod:`stackcore.families`).

Service: ``network`` - the agents' endpoints (state reports on ``network.reports``, the agent RPC
on ``network.agents``, the DHCP agents' RPC on ``network.dhcp``, the L3 agents' on
``network.l3``) and, for the embedded
default, the L2 agents named in ``[network] local_agents``. The ML2 plugin itself is a library
of the API: all of its state is in the shared database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackcore.families import Family, PluginKind, StartContext

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.plugins.loader import Plugin

NETWORK_BINARY = "stackcore-network"
AGENT_RPC_BINARY = "stackcore-network-agents"
DHCP_RPC_BINARY = "stackcore-network-dhcp"
L3_RPC_BINARY = "stackcore-network-l3"

FAMILY = Family(
    name="network",
    title="Network",
    package="stackcore.network",
    kinds=(
        PluginKind("network.type", "stackcore.network.type_drivers",
                   "stackcore.network.contracts.type_driver:CONTRACT",
                   "stackcore.testing.suites.network_type", "ML2 type drivers"),
        PluginKind("network.mechanism", "stackcore.network.mechanism_drivers",
                   "stackcore.network.contracts.mechanism_driver:CONTRACT",
                   "stackcore.testing.suites.network_mechanism", "ML2 mechanism drivers"),
        PluginKind("network.agent", "stackcore.network.agents",
                   "stackcore.network.contracts.agent:CONTRACT",
                   "stackcore.testing.suites.network_agent", "L2 agents"),
        PluginKind("network.dhcp", "stackcore.network.dhcp_drivers",
                   "stackcore.network.dhcp.driver:CONTRACT",
                   "stackcore.testing.suites.network_dhcp", "DHCP drivers"),
    ),
    services=("network",),
    models=("stackcore.network.models",),
    options="stackcore.network.opts:list_opts",
    plugin_options="stackcore.network.opts:plugin_opts",
    runtime_path="stackcore.network.family:Runtime",
    quotas="stackcore.network.quotas:RESOURCES",
    policies="stackcore.network.policies:list_rules",
)


class Runtime:
    """Network in one Cloud: type and mechanism drivers always (the API is the ML2 plugin),
    local L2 agents only where this process runs the network service."""

    def __init__(self, conf: cfg.ConfigOpts, services: frozenset[str]) -> None:
        self.conf = conf
        self.services = services
        self.types: list[Plugin] = []
        self.mechanisms: list[Plugin] = []
        self.agent_plugins: list[Plugin] = []
        self.agents: list[Any] = []

    def load_plugins(self, pending: Mapping[str, Mapping[str, Any]]) -> None:
        from stackcore import conf as sc_conf
        from stackcore.network.api import load_plugins
        from stackcore.network.contracts import agent
        from stackcore.plugins import loader

        conf = self.conf
        self.types, self.mechanisms = load_plugins(conf)
        if "network" in self.services and conf.network.local_agents:
            self.agent_plugins = loader.load_ordered(agent.NAMESPACE, conf.network.local_agents,
                                                     agent.CONTRACT)
            for plugin in self.agent_plugins:
                sc_conf.register(conf, plugin.cls.list_opts())

    def build_api(self, ctx: StartContext) -> Any:
        from stackcore.network.api import NetworkAPI

        return NetworkAPI(ctx.conf, ctx.db, ctx.transport, (self.types, self.mechanisms))

    def start(self, ctx: StartContext) -> None:
        if "network" not in self.services:
            return
        from stackcore.network.agents.rpc import AgentRPCEndpoint
        from stackcore.network.agents.state import AgentStateEndpoint
        from stackcore.network.dhcp.rpc import DhcpRPCEndpoint
        from stackcore.network.l3.rpc import L3RPCEndpoint

        if self.agent_plugins:
            from stackcore.service import check_down_time

            check_down_time(ctx.conf.network.agent_down_time, ctx.conf.agent.report_interval,
                            "[network] agent_down_time", "[agent] report_interval")
        plugin = ctx.apis["network"].plugin
        ctx.run(AgentStateEndpoint(ctx.conf, ctx.db, plugin.rebind_failed_ports,
                                   plugin.type_usage),
                NETWORK_BINARY, ctx.conf.host, "nova")
        ctx.run(AgentRPCEndpoint(ctx.conf, ctx.db, plugin.mechanism_manager), AGENT_RPC_BINARY,
                ctx.conf.host, "nova")
        ctx.run(DhcpRPCEndpoint(ctx.conf, ctx.db, plugin), DHCP_RPC_BINARY, ctx.conf.host,
                "nova")
        ctx.run(L3RPCEndpoint(ctx.conf, ctx.db, plugin), L3_RPC_BINARY, ctx.conf.host, "nova")
        # Local L2 agents last: they report to and query the endpoints started above.
        for found in self.agent_plugins:
            agent = found.cls(ctx.conf, ctx.transport)
            agent.start()
            self.agents.append(agent)

    def stop(self) -> None:
        import logging

        for agent in reversed(self.agents):
            try:
                agent.stop()
            except Exception:
                logging.getLogger(__name__).exception("stopping agent %s failed",
                                                      type(agent).__name__)
        self.agents.clear()
