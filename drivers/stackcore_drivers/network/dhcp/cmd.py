"""Console script ``stackcore-dhcp-agent``.

``stackcore-dhcp-agent --config-file /etc/stackcore/stackcore.conf [--config-file ...]``

Runs the DHCP agent of the host named by ``[DEFAULT] host``; it needs only the server's RPC bus
(``[DEFAULT] transport_url``, e.g. rabbit://) and never opens the database. It runs until
SIGTERM/SIGINT and ends within 5 s of the first one; stopping leaves the dnsmasq and metadata
proxy processes running (the next start adopts them, or stops those whose network went
meanwhile). It refuses to start with ``[dhcp] enable_isolated_metadata`` on and no ``[dhcp]
metadata_proxy_shared_secret``.
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
from stackcore.network.dhcp import load_driver
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.dhcp import metadata_proxy

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport
    from stackcore_drivers.network.dhcp.agent import DhcpAgent

LOG = logging.getLogger(__name__)
PROG = "stackcore-dhcp-agent"


def main(argv: Sequence[str] | None = None) -> int:
    from stackcore_drivers.network.dhcp.agent import DhcpAgent

    parser = argparse.ArgumentParser(prog=PROG, description=(DhcpAgent.__doc__ or "").strip())
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="configuration file (repeatable; later files win)")
    args = parser.parse_args(argv)
    block_stop_signals()  # before anything starts a thread
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conf = load_agent_conf(DhcpAgent.list_opts()[1:], args.config_file)
        if not conf.transport_url or conf.transport_url.startswith("inprocess"):
            raise exception.ConfigError("[DEFAULT] transport_url must name the server's RPC "
                                        "bus (e.g. rabbit://...): in-process RPC cannot "
                                        "reach another process")
        # the driver now, before anything connects: its name and its options' values
        driver = load_driver(conf, conf.dhcp.dhcp_driver, DhcpAgent.driver_dir(conf))
        sc_conf.validate_all(conf)
        metadata_proxy.check_conf(conf)
    except exception.StackcoreError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    running: list[tuple[DhcpAgent, Transport]] = []

    def start() -> None:
        transport = rpc.get_transport(conf)
        agent = DhcpAgent(conf, transport, driver)
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
    """The DHCP agent's and the dnsmasq driver's options (oslo.config.opts entry point)."""
    from stackcore_drivers.network.dhcp import dnsmasq
    from stackcore_drivers.network.dhcp.agent import DHCP_OPTS

    return [("dhcp", DHCP_OPTS), ("dnsmasq", dnsmasq.OPTS)]
