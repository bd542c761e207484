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

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from stackcore import conf as sc_conf
from stackcore.network.dhcp import load_driver
from stackcore_drivers.network.cmd import run_agent_process
from stackcore_drivers.network.dhcp import metadata_proxy

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport
    from stackcore_drivers.network.dhcp.agent import DhcpAgent

PROG = "stackcore-dhcp-agent"


def main(argv: Sequence[str] | None = None) -> int:
    from stackcore_drivers.network.dhcp.agent import DhcpAgent

    def prepare(conf: cfg.ConfigOpts) -> Callable[[Transport], DhcpAgent]:
        # the driver now, before anything connects: its name and its options' values
        driver = load_driver(conf, conf.dhcp.dhcp_driver, DhcpAgent.driver_dir(conf))
        sc_conf.validate_all(conf)
        metadata_proxy.check_conf(conf)
        return lambda transport: DhcpAgent(conf, transport, driver)

    return run_agent_process(PROG, DhcpAgent.__doc__ or "", DhcpAgent.list_opts()[1:], argv,
                             prepare)


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """The DHCP agent's and the dnsmasq driver's options (oslo.config.opts entry point)."""
    from stackcore_drivers.network.dhcp import dnsmasq
    from stackcore_drivers.network.dhcp.agent import DHCP_OPTS

    return [("dhcp", DHCP_OPTS), ("dnsmasq", dnsmasq.OPTS)]
