"""Console script ``stackcore-l3-agent``.

``stackcore-l3-agent --config-file /etc/stackcore/stackcore.conf [--config-file ...]``

Runs the L3 agent of the host named by ``[DEFAULT] host``; it needs only the server's RPC bus
(``[DEFAULT] transport_url``, e.g. rabbit://) and never opens the database. It runs until
SIGTERM/SIGINT and ends within 5 s of the first one (the same runner as the other agents:
:func:`stackcore.network.agents.run_until_signalled`); stopping leaves the routers'
namespaces in place (the next start adopts them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from stackcore import conf as sc_conf
from stackcore_drivers.network.cmd import run_agent_process

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport
    from stackcore_drivers.network.l3.agent import L3Agent

PROG = "stackcore-l3-agent"


def main(argv: Sequence[str] | None = None) -> int:
    from stackcore_drivers.network.l3.agent import L3Agent

    def prepare(conf: cfg.ConfigOpts) -> Callable[[Transport], L3Agent]:
        sc_conf.validate_all(conf)
        return lambda transport: L3Agent(conf, transport)

    return run_agent_process(PROG, L3Agent.__doc__ or "", L3Agent.list_opts()[1:], argv,
                             prepare)


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """The L3 agent's options (oslo.config.opts entry point)."""
    from stackcore_drivers.network.l3.agent import L3_OPTS

    return [("l3", L3_OPTS)]
