"""Console script ``stackcore-l3-agent``.

``stackcore-l3-agent --config-file /etc/stackcore/stackcore.conf [--config-file ...]``

Runs the L3 agent of the host named by ``[DEFAULT] host``; it needs only the server's RPC bus
(``[DEFAULT] transport_url``, e.g. rabbit://) and never opens the database. It runs until
SIGTERM/SIGINT and ends within 5 s of the first one (the same runner as the other agents:
:func:`stackcore.network.agents.run_until_signalled`); stopping leaves the routers'
namespaces in place (the next start adopts them).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stackcore import conf as sc_conf
from stackcore import exception, rpc
from stackcore.network.agents import block_stop_signals, run_until_signalled
from stackcore_drivers.network.conf import load_agent_conf

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport
    from stackcore_drivers.network.l3.agent import L3Agent

LOG = logging.getLogger(__name__)
PROG = "stackcore-l3-agent"


def main(argv: Sequence[str] | None = None) -> int:
    from stackcore_drivers.network.l3.agent import L3Agent

    parser = argparse.ArgumentParser(prog=PROG, description=(L3Agent.__doc__ or "").strip())
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="configuration file (repeatable; later files win)")
    args = parser.parse_args(argv)
    block_stop_signals()  # before anything starts a thread
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conf = load_agent_conf(L3Agent.list_opts()[1:], args.config_file)
        if not conf.transport_url or conf.transport_url.startswith("inprocess"):
            raise exception.ConfigError("[DEFAULT] transport_url must name the server's RPC "
                                        "bus (e.g. rabbit://...): in-process RPC cannot "
                                        "reach another process")
        sc_conf.validate_all(conf)
    except exception.StackcoreError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    running: list[tuple[L3Agent, Transport]] = []

    def start() -> None:
        transport = rpc.get_transport(conf)
        agent = L3Agent(conf, transport)
        running.append((agent, transport))
        agent.start()

    def stop() -> None:
        for agent, transport in running:
            agent.stop()
            transport.close()

    run_until_signalled(PROG, start, stop,
                        ready=lambda: LOG.info("%s running on host %s", PROG, conf.host))
    return 0  # not reached: run_until_signalled ends the process


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """The L3 agent's options (oslo.config.opts entry point)."""
    from stackcore_drivers.network.l3.agent import L3_OPTS

    return [("l3", L3_OPTS)]
