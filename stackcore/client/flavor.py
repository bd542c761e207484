"""``flavor create/list/show/delete``."""

from __future__ import annotations

import argparse
from typing import Any

from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne

COLUMNS = ("id", "name", "vcpus", "ram_mb", "disk_gb")


class CreateFlavor(CloudShowOne):
    """Create a flavor."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--vcpus", type=int, required=True)
        parser.add_argument("--ram", type=int, required=True, metavar="MB")
        parser.add_argument("--disk", type=int, default=0, metavar="GB")
        parser.add_argument("--private", action="store_true",
                            help="usable only by the projects it is shared with")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.create_flavor(
            args.name, args.vcpus, args.ram, args.disk, is_public=not args.private))


class ListFlavor(CloudLister):
    """List flavors."""

    def take_action(self, args: argparse.Namespace) -> Any:
        return COLUMNS, [fmt.row(f, COLUMNS) for f in self.cloud.compute.list_flavors()]


class ShowFlavor(CloudShowOne):
    """Show a flavor (by name or id)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("flavor")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.get_flavor(args.flavor))


class DeleteFlavor(CloudCommand):
    """Delete flavors (by name or id)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("flavor", nargs="+")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for flavor in args.flavor:
            self.cloud.compute.delete_flavor(flavor)
