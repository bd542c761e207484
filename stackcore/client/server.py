"""``server create/list/show/delete``, the lifecycle actions (start, stop, reboot, pause,
suspend, rescue, rebuild, evacuate, volume attach/detach), server snapshots and the console
log."""

from __future__ import annotations

import argparse
import base64
from typing import Any

from stackcore import exception
from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne, add_wait
from stackcore.client.keypair import read_file

COLUMNS = ("id", "name", "status", "task_state", "host", "flavor", "image_id")
_SETTLED = ("ACTIVE", "ERROR")


class CreateServer(CloudShowOne):
    """Boot a server."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--flavor", required=True, help="flavor name or id")
        parser.add_argument("--image", help="image name or id (the root disk's source)")
        root = parser.add_mutually_exclusive_group()
        root.add_argument("--boot-volume", metavar="VOLUME_ID",
                          help="boot from this existing volume (no --image; it is kept "
                               "when the server is deleted)")
        root.add_argument("--boot-from-volume", type=int, metavar="SIZE_GB",
                          help="with --image: make a root volume of SIZE_GB from the image "
                               "and boot from it (deleted with the server)")
        parser.add_argument("--availability-zone")
        parser.add_argument("--network", action="append", default=[], metavar="NETWORK_ID",
                            help="a port on this network (repeatable)")
        parser.add_argument("--volume", action="append", default=[], metavar="VOLUME_ID",
                            help="attach this volume at boot (repeatable)")
        parser.add_argument("--security-group", action="append", default=[],
                            metavar="SECURITY_GROUP",
                            help="name or id of a security group for the server's ports "
                                 "(repeatable; default: the project's default group)")
        parser.add_argument("--key-name", metavar="KEYPAIR",
                            help="one's keypair whose public key the server gets")
        parser.add_argument("--user-data", metavar="FILE",
                            help="a file handed to the server by the metadata service "
                                 "(cloud-init config, script...; sent base64-encoded)")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        compute = self.cloud.compute
        user_data = None
        if args.user_data is not None:
            user_data = base64.b64encode(read_file("--user-data", args.user_data)).decode()
        boot_volume: str | dict[str, Any] | None = args.boot_volume
        if args.boot_from_volume is not None:
            boot_volume = {"size_gb": args.boot_from_volume}
        server = compute.create_server(
            args.name, args.flavor, args.image, boot_volume=boot_volume,
            availability_zone=args.availability_zone,
            networks=[{"network_id": n} for n in args.network] or None,
            volumes=args.volume or None,
            security_groups=args.security_group or None, key_name=args.key_name,
            user_data=user_data, wait=False)
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
        volumes = [f"{v.volume_id} {v.device}" + (" (root)" if v.root else "")
                   for v in compute.list_server_volumes(server.id)]
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


def _simple_action(method: str, doc: str) -> type[_OneServer]:
    """A command calling ``cloud.compute.<method>(server)`` and showing the server: the
    actions that take nothing but the server (pause, suspend, rescue's way back...)."""

    class Action(_OneServer):
        def take_action(self, args: argparse.Namespace) -> Any:
            return fmt.show(getattr(self.cloud.compute, method)(args.server))

    Action.__doc__ = doc
    Action.__name__ = Action.__qualname__ = "".join(
        part.capitalize() for part in method.split("_"))
    return Action


PauseServer = _simple_action("pause_server", "Pause a server (kept in memory, not running).")
UnpauseServer = _simple_action("unpause_server", "Run a paused server again.")
SuspendServer = _simple_action("suspend_server", "Suspend a server (its memory saved to disk).")
ResumeServer = _simple_action("resume_server", "Resume a suspended server.")
UnrescueServer = _simple_action("unrescue_server",
                                "Boot a rescued server from its own disk again.")


class RescueServer(_OneServer):
    """Boot a server from a rescue image, its own root disk attached as the second disk."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--image", help="rescue image name or id (default: the server's)")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.compute.rescue_server(args.server, image=args.image))


class RebuildServer(_OneServer):
    """Make a server's root disk afresh from an image (ports and volumes stay)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--image", required=True, help="image name or id")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        compute = self.cloud.compute
        server = compute.rebuild_server(args.server, args.image, wait=False)
        if args.wait:
            server = self.wait_for(
                f"server {server.id}", lambda: compute.get_server(server.id),
                lambda s: s.status + (f" ({s.task_state})" if s.task_state else ""),
                lambda s: s.status in (*_SETTLED, "STOPPED") and s.task_state is None,
                args.timeout or self.cloud.conf.compute.build_timeout)
        return fmt.show(server)


class EvacuateServer(_OneServer):
    """Rebuild a server of a dead host on another host (admin; as ``openstack server
    evacuate``): its host's compute service must be down - fence the host first. Same ports
    and volumes; the root disk is made afresh from the image (a local disk's writes are
    lost). With --host, rebuilt on that host if it passes the scheduler's filters."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", help="the compute host to rebuild it on (still "
                            "filtered by the scheduler; default: the scheduler picks one)")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        compute = self.cloud.compute
        server = compute.evacuate_server(args.server, wait=False, host=args.host)
        if args.wait:
            server = self.wait_for(
                f"server {server.id}", lambda: compute.get_server(server.id),
                lambda s: s.status + (f" ({s.task_state})" if s.task_state else ""),
                lambda s: s.status in (*_SETTLED, "STOPPED") and s.task_state is None,
                args.timeout or self.cloud.conf.compute.build_timeout)
        return fmt.show(server)


class MigrateServer(_OneServer):
    """Move a server to another host (admin; as ``openstack server migrate``): cold (it is
    powered off and ends ``RESIZED``: confirm or revert it) or, with --live-migration,
    while it runs (ACTIVE or PAUSED servers; it stays so). With --host, to that host if it
    passes the scheduler's filters."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--live-migration", action="store_true",
                            help="move it while it runs")
        parser.add_argument("--host", help="the compute host to move it to (live only; "
                            "still filtered by the scheduler; default: the scheduler picks)")
        disks = parser.add_mutually_exclusive_group()
        disks.add_argument("--block-migration", dest="block_migration", action="store_true",
                           default=None, help="copy its local disks (live only)")
        disks.add_argument("--shared-migration", dest="block_migration",
                           action="store_false", help="its disks are on storage both hosts "
                           "share (live only; default: the drivers decide)")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        compute = self.cloud.compute
        if not args.live_migration and (args.host or args.block_migration is not None):
            raise exception.Invalid(
                "--host", "--host, --block-migration and --shared-migration need "
                "--live-migration (a cold migration goes where the scheduler picks)",
                args.host or "")
        if args.live_migration:
            server = compute.live_migrate_server(args.server, host=args.host,
                                                 block_migration=args.block_migration,
                                                 wait=False)
            settled: tuple[str, ...] = (*_SETTLED, "PAUSED")
        else:
            server = compute.migrate_server(args.server, wait=False)
            settled = (*_SETTLED, "STOPPED", "RESIZED")
        if args.wait:
            server = self.wait_for(
                f"server {server.id}", lambda: compute.get_server(server.id),
                lambda s: s.status + (f" ({s.task_state})" if s.task_state else ""),
                lambda s: s.status in settled and s.task_state is None,
                args.timeout or self.cloud.conf.compute.build_timeout)
        return fmt.show(server)


class AbortServerMigration(_OneServer):
    """Abort a server's live migration in progress (admin; as ``openstack server migration
    abort``): it stays on its host, running."""

    def take_action(self, args: argparse.Namespace) -> Any:
        self.cloud.compute.abort_live_migration(args.server)
        return fmt.show(self.cloud.compute.get_server(args.server))


class CreateServerImage(_OneServer):
    """Snapshot a server's root disk into a new image (as ``openstack server image create``);
    with --wait, until the image is active, showing the upload's bytes."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name", required=True, help="the new image's name")
        parser.add_argument("--property", action="append", default=[], metavar="KEY=VALUE")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        from stackcore.client.image import pairs

        image = self.cloud.compute.create_image(args.server, args.name,
                                                metadata=pairs(args.property) or None)
        if args.wait:
            api = self.cloud.image
            image = self.wait_for(
                f"image {image.id}", lambda: api.get(image.id), lambda i: i.status,
                lambda i: i.status not in ("queued", "saving"),
                args.timeout or self.cloud.conf.compute.build_timeout, copies=True)
        return fmt.show(image)


class ShowConsoleLog(CloudCommand):
    """Print a server's console log (as ``openstack console log show``)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", help="server id")
        parser.add_argument("--lines", type=int, metavar="N", help="only the last N lines")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        self.app.stdout.write(self.cloud.compute.get_console_output(args.server, args.lines))
