"""Mechanism drivers for tests and the embedded default: ``fake``, ``fake_tor`` and ``logger``.

``fake`` binds any segment whose type is in ``[mech_fake] network_types`` with
``vif_type = fake`` (status ACTIVE: no agent will report the device up), records every hook
call in :attr:`FakeMechanismDriver.calls`, and fails the hooks named in ``[mech_fake] fail_on``
(failure injection). With ``[mech_fake] agent_type`` set it behaves like an agent-based driver:
it binds only where a live agent of that type reports the segment's type in
``configurations["network_types"]`` and, for flat/VLAN, the physical network in
``configurations["mappings"]``, and says why not otherwise; the port then stays DOWN until that
agent reports it wired (the core's fake agent, ``stackcore.network.agents.fake``, does).

``fake_tor`` models a top-of-rack switch for hierarchical binding: it binds a segment of type
``[mech_fake_tor] from_type`` at its level and continues with the network's segments of type
``to_type``. ``logger`` logs every hook and never binds.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stackcore import exception, lazy
from stackcore.network.contracts import mechanism_driver as api

if TYPE_CHECKING:
    from oslo_config import cfg


LOG = logging.getLogger(__name__)


FAKE_OPTS = lazy.options(lambda cfg: [
    cfg.ListOpt("network_types", default=["flat", "vlan", "vxlan"],
                help="Segment types the fake mechanism driver binds."),
    cfg.ListOpt("fail_on", default=[],
                help="Hooks that raise DriverError (failure injection for tests), e.g. "
                     "create_port_postcommit or bind_port."),
    cfg.StrOpt("agent_type", default="",
               help="If set, bind only where a live agent of this type runs on the port's "
                    "host with the segment's type and physical network in its configuration."),
    cfg.StrOpt("vif_type", default="fake", help="vif_type of the ports the fake driver binds."),
])


FAKE_TOR_OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("from_type", default="vxlan",
               help="Segment type fake_tor binds at its level."),
    cfg.StrOpt("to_type", default="vlan",
               help="Segment type fake_tor hands to the next binding level."),
])


HOOK_NAMES = api.HOOKS


class FakeMechanismDriver(api.MechanismDriver):
    VERSION = "1.0"
    capabilities = {"bind_port": True}

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("mech_fake", FAKE_OPTS)]

    def initialize(self) -> None:
        # Serving an agent type makes the agent RPC hand that agent the ports bound here.
        self.__dict__["AGENT_TYPE"] = self.conf.mech_fake.agent_type or None
        unknown = sorted(set(self.conf.mech_fake.fail_on) - set(HOOK_NAMES) - {"bind_port"})
        if unknown:
            raise exception.ConfigError(
                f"[mech_fake] fail_on: unknown hook(s) {', '.join(unknown)}"
            )

    def _hook(self, name: str, context: Any) -> None:
        with self._lock:
            self.calls.append((name, copy.deepcopy(dict(context.current))))
        if name in self.conf.mech_fake.fail_on:
            raise exception.DriverError(f"injected failure in {name}")

    def bind_port(self, context: api.PortContext) -> None:
        if "bind_port" in self.conf.mech_fake.fail_on:
            raise exception.DriverError("injected failure in bind_port")
        wanted = self.conf.mech_fake.network_types
        agent_type = self.conf.mech_fake.agent_type
        agents = context.host_agents(agent_type) if agent_type else []
        live = [a for a in agents if a["alive"]]
        if agent_type and not live:
            context.refuse(f"no live {agent_type} agent on host {context.host!r}" +
                           (" (its agent is dead)" if agents else ""))
            return
        for segment in context.segments_to_bind:
            if segment["network_type"] not in wanted:
                context.refuse(f"network type {segment['network_type']!r} not in "
                               f"[mech_fake] network_types", segment["id"])
                continue
            if agent_type and not self._agent_can_bind(context, live, segment):
                continue
            # Without an agent nobody will report the device up: ACTIVE at once. With one,
            # the port stays DOWN until its agent wired it.
            context.set_binding(segment["id"], self.conf.mech_fake.vif_type,
                                {"port_filter": False, "connectivity": "l2"},
                                status=None if agent_type else "ACTIVE")
            return

    def _agent_can_bind(
        self, context: api.PortContext, agents: list[dict[str, Any]], segment: Any
    ) -> bool:
        for agent in agents:
            config = agent["configurations"]
            if segment["network_type"] not in config.get("network_types", []):
                context.refuse(f"agent on host {context.host!r} does not support network "
                               f"type {segment['network_type']!r}", segment["id"])
            elif segment["network_type"] in ("flat", "vlan") and (
                segment["physical_network"] not in config.get("mappings", {})
            ):
                context.refuse(f"physical network {segment['physical_network']!r} not in the "
                               "agent's mappings", segment["id"])
            else:
                return True
        return False


def _make_hook(name: str) -> Any:
    def hook(self: FakeMechanismDriver, context: Any) -> None:
        self._hook(name, context)

    hook.__name__ = name
    hook.__doc__ = f"Record the call; raise if {name} is in [mech_fake] fail_on."
    return hook


for _name in HOOK_NAMES:
    setattr(FakeMechanismDriver, _name, _make_hook(_name))


class FakeTorMechanismDriver(api.MechanismDriver):
    VERSION = "1.0"
    capabilities = {"bind_port": True}

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("mech_fake_tor", FAKE_TOR_OPTS)]

    def initialize(self) -> None:
        pass

    def bind_port(self, context: api.PortContext) -> None:
        opts = self.conf.mech_fake_tor
        following = [s for s in context.network.network_segments
                     if s["network_type"] == opts.to_type]
        for segment in context.segments_to_bind:
            if segment["network_type"] != opts.from_type:
                context.refuse(f"only binds {opts.from_type} segments", segment["id"])
            elif not following:
                context.refuse(f"the network has no {opts.to_type} segment to continue with",
                               segment["id"])
            else:
                context.continue_binding(segment["id"], following)
                return


class LoggerMechanismDriver(api.MechanismDriver):
    """Logs every hook at INFO with the resource id; never binds."""

    VERSION = "1.0"

    def initialize(self) -> None:
        LOG.info("logger mechanism driver initialized")


def _make_log_hook(name: str) -> Any:
    def hook(self: LoggerMechanismDriver, context: Any) -> None:
        LOG.info("%s: %s", name, context.current.get("id"))

    hook.__name__ = name
    hook.__doc__ = f"Log {name}."
    return hook


for _name in HOOK_NAMES:
    setattr(LoggerMechanismDriver, _name, _make_log_hook(_name))


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """Options of the core's fake mechanism drivers (for the configuration reference)."""
    return [("mech_fake", FAKE_OPTS), ("mech_fake_tor", FAKE_TOR_OPTS)]

