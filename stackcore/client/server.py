"""``server create/list/show/delete`` and the lifecycle actions (start, stop, reboot, volume
attach/detach)."""

from __future__ import annotations

import argparse
from typing import Any

from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne, add_wait

COLUMNS = ("id", "name", "status", "task_state", "host", "flavor", "image_id")
_SETTLED = ("ACTIVE", "ERROR")


class CreateServer(CloudShowOne):
    """Boot a server."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--flavor", required=True, help="flavor name or id")
        parser.add_argument("--image", required=True, help="image name or id")
        parser.add_argument("--availability-zone")
        parser.add_argument("--network", action="append", default=[], metavar="NETWORK_ID",
                            help="a port on this network (repeatable)")
        parser.add_argument("--volume", action="append", default=[], metavar="VOLUME_ID",
                            help="attach this volume at boot (repeatable)")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        compute = self.cloud.compute
        server = compute.create_server(
            args.name, args.flavor, args.image, availability_zone=args.availability_zone,
            networks=[{"network_id": n} for n in args.network] or None,
            volumes=args.volume or None, wait=False)
        if args.wait:
            server = self.wait_for(
                f"server {server.id}", lambda: compute.get_server(server.id),
                lambda s: s.status + (f" ({s.task_state})" if s.task_state else ""),
                lambda s: s.status in _SETTLED and s.task_state is None,
                args.timeout or self.cloud.conf.compute.build_timeout)
        return fmt.show(server)


class ListServer(CloudLister):
    """List servers."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--status")
        parser.add_argument("--host")
        parser.add_argument("--name", help="a substring of the name")
        parser.add_argument("--all-projects", action="store_true")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        servers = self.cloud.compute.list_servers(
            status=args.status, host=args.host, name=args.name, all_projects=args.all_projects)
        return COLUMNS, [fmt.row(s, COLUMNS) for s in servers]


class _OneServer(CloudShowOne):
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", help="server id")
        return parser


class ShowServer(_OneServer):
    """Show a server, with its volumes."""

    def take_action(self, args: argparse.Namespace) -> Any:
        compute = self.cloud.compute
        server = compute.get_server(args.server)
        volumes = [f"{v.volume_id} {v.device}" for v in compute.list_server_volumes(server.id)]
        return fmt.show(server, {"volumes": volumes})


class StartServer(_OneServer):
    """Start a stopped server."""

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.start_server(args.server))


class StopServer(_OneServer):
    """Stop a server."""

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.stop_server(args.server))


class RebootServer(_OneServer):
    """Reboot a server."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--hard", action="store_true")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.reboot_server(
            args.server, "HARD" if args.hard else "SOFT"))


class DeleteServer(CloudCommand):
    """Delete servers."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", nargs="+", help="server id")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for server in args.server:
            self.cloud.compute.delete_server(server)


class AddVolume(CloudShowOne):
    """Attach a volume to a server."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", help="server id")
        parser.add_argument("volume", help="volume id")
        parser.add_argument("--device", help="e.g. /dev/vdb (default: the next free one)")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.attach_volume(args.server, args.volume,
                                                         args.device))


class RemoveVolume(CloudCommand):
    """Detach a volume from a server."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", help="server id")
        parser.add_argument("volume", help="volume id")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        self.cloud.compute.detach_volume(args.server, args.volume)
