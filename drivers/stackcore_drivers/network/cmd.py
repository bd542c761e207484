"""Console scripts: ``stackcore-ovs-agent`` and ``stackcore-linuxbridge-agent``.

``stackcore-ovs-agent --config-file /etc/stackcore/stackcore.conf [--config-file ...]``

The agent runs on the host named by ``[DEFAULT] host``; it needs only the server's RPC bus
(``[DEFAULT] transport_url``, e.g. rabbit://: the in-process transport cannot cross
processes) - it learns its ports over the agent RPC and never opens the database. It runs
until SIGTERM/SIGINT and ends within 5 s of the first one; stopping leaves the wiring in place
(the next start resyncs).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from stackcore import exception, rpc
from stackcore.network.agents import block_stop_signals, run_until_signalled
from stackcore_drivers.network.agent_base import L2Agent
from stackcore_drivers.network.conf import load_agent_conf

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)


class AgentProcess(Protocol):
    """What :func:`run_agent_process` runs: an agent started once, stopped once."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


#: Checks an agent's loaded configuration (raising StackcoreError naming the culprit) and
#: returns how to make the agent on the RPC transport - so nothing connects before the whole
#: configuration is known to be good.
Prepare = Callable[["cfg.ConfigOpts"], Callable[["Transport"], AgentProcess]]


def run_agent_process(prog: str, description: str,
                      groups: Sequence[tuple[str, Sequence[cfg.Opt]]],
                      argv: Sequence[str] | None, prepare: Prepare) -> int:
    """The console script of every network agent (L2, DHCP, L3): parse ``--config-file``,
    block the stop signals before any thread starts, load and check the configuration (1 and
    one line naming the culprit if bad: ``[DEFAULT] transport_url`` must name a real bus),
    then run the agent until SIGTERM/SIGINT; the process ends within 5 s of the first signal
    (:func:`stackcore.network.agents.run_until_signalled`: a pass still running then is
    abandoned, the next start's first pass finishes it)."""
    parser = argparse.ArgumentParser(prog=prog, description=description.strip())
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="configuration file (repeatable; later files win)")
    args = parser.parse_args(argv)
    block_stop_signals()  # before anything starts a thread
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conf = load_agent_conf(groups, args.config_file)
        if not conf.transport_url or conf.transport_url.startswith("inprocess"):
            raise exception.ConfigError("[DEFAULT] transport_url must name the server's RPC "
                                        "bus (e.g. rabbit://...): in-process RPC cannot "
                                        "reach another process")
        make = prepare(conf)
    except exception.StackcoreError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    running: list[tuple[AgentProcess, Transport]] = []

    def start() -> None:
        transport = rpc.get_transport(conf)
        agent = make(transport)
        running.append((agent, transport))
        agent.start()

    def stop() -> None:
        for agent, transport in running:
            agent.stop()
            transport.close()

    run_until_signalled(prog, start, stop,
                        ready=lambda: LOG.info("%s running on host %s", prog, conf.host))
    return 0  # not reached: run_until_signalled ends the process


def run_agent(prog: str, agent_cls: type[L2Agent],
              groups: Sequence[tuple[str, Sequence[cfg.Opt]]], argv: Sequence[str] | None) -> int:
    """An L2 agent's console script (:func:`run_agent_process`)."""
    def prepare(conf: cfg.ConfigOpts) -> Callable[[Transport], AgentProcess]:
        agent_cls.check_config(conf)
        return lambda transport: agent_cls(conf, transport)

    return run_agent_process(prog, agent_cls.__doc__ or "", groups, argv, prepare)


def ovs_agent(argv: Sequence[str] | None = None) -> int:
    from stackcore_drivers.network.ovs import conf as ovs_conf
    from stackcore_drivers.network.ovs.agent import OvsAgent

    return run_agent("stackcore-ovs-agent", OvsAgent, [("ovs", ovs_conf.AGENT_OPTS)], argv)


def linuxbridge_agent(argv: Sequence[str] | None = None) -> int:
    from stackcore_drivers.network.linuxbridge import conf as lb_conf
    from stackcore_drivers.network.linuxbridge.agent import LinuxBridgeAgent

    return run_agent("stackcore-linuxbridge-agent", LinuxBridgeAgent,
                     [("linux_bridge", lb_conf.LINUX_BRIDGE_OPTS),
                      ("vxlan", lb_conf.VXLAN_OPTS)], argv)


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """The agents' options (oslo.config.opts entry point ``stackcore.network.agents``)."""
    from stackcore_drivers.network.agent_base import AGENT_OPTS, SECURITYGROUP_OPTS
    from stackcore_drivers.network.linuxbridge import conf as lb_conf
    from stackcore_drivers.network.ovs import conf as ovs_conf

    return [("agent", AGENT_OPTS), ("securitygroup", SECURITYGROUP_OPTS),
            ("ovs", ovs_conf.AGENT_OPTS),
            ("ml2_ovs", ovs_conf.MECH_OPTS), ("linux_bridge", lb_conf.LINUX_BRIDGE_OPTS),
            ("vxlan", lb_conf.VXLAN_OPTS)]
