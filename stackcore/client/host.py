"""``host list/show/set`` (compute hosts) and ``agent list`` (network agents)."""

from __future__ import annotations

import argparse
from typing import Any

from stackcore import exception
from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne

HOST_COLUMNS = ("host", "availability_zone", "up", "disabled", "reporting", "allocated")
AGENT_COLUMNS = ("id", "agent_type", "binary", "host", "alive", "heartbeat_at")


class ListHost(CloudLister):
    """List compute hosts: up, enabled, what is claimed on them."""

    def take_action(self, args: argparse.Namespace) -> Any:
        hosts = self.cloud.compute.list_hosts()
        return HOST_COLUMNS, [fmt.row(h, HOST_COLUMNS) for h in hosts]


class ShowHost(CloudShowOne):
    """Show a compute host with its latest stats."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        for host in self.cloud.compute.list_hosts():
            if host.host == args.host:
                return fmt.show(host)
        raise exception.NotFound("host", args.host)


class SetHost(CloudCommand):
    """Enable or disable a compute host for new servers."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host")
        state = parser.add_mutually_exclusive_group(required=True)
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--reason", help="why it is disabled")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        self.cloud.compute.set_host_enabled(args.host, args.enable, args.reason)


class ListAgent(CloudLister):
    """List network agents and whether they are alive."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host")
        parser.add_argument("--agent-type")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        agents = self.cloud.network.list_agents(host=args.host, agent_type=args.agent_type)
        return AGENT_COLUMNS, [fmt.row(a, AGENT_COLUMNS) for a in agents]
