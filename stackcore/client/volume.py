"""``volume create/list/show/delete/extend/manage/unmanage/migrate/retype/reimage`` and
``volume snapshot create/list/show/delete``."""

from __future__ import annotations

import argparse
from typing import Any

from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne, add_wait

COLUMNS = ("id", "name", "status", "size", "volume_type", "host", "attachments")
SNAPSHOT_COLUMNS = ("id", "name", "status", "size", "volume_id")
#: a volume no longer being worked on (the volume API's own wait waits for these too)
_SETTLED = ("available", "in-use", "error", "error_deleting", "error_extending",
            "error_managing", "deleted")
_SNAPSHOT_SETTLED = ("available", "error")


class CreateVolume(CloudShowOne):
    """Create a volume of SIZE GiB: empty, or from a snapshot, a volume or an image."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("size", type=int, metavar="SIZE", help="GiB")
        parser.add_argument("--name")
        parser.add_argument("--type", dest="volume_type")
        parser.add_argument("--availability-zone")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--snapshot", metavar="SNAPSHOT_ID")
        source.add_argument("--source", metavar="VOLUME_ID", help="copy this volume")
        source.add_argument("--image", metavar="IMAGE_ID")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.volume
        volume = api.create(args.size, name=args.name, volume_type=args.volume_type,
                            availability_zone=args.availability_zone,
                            snapshot_id=args.snapshot, source_volume_id=args.source,
                            image_id=args.image, wait=False)
        if args.wait:
            volume = self.wait_for(
                f"volume {volume.id}", lambda: api.get(volume.id, include_deleted=True),
                lambda v: v.status, lambda v: v.status in _SETTLED,
                args.timeout or self.cloud.conf.volume.operation_timeout,
                copies=args.image is not None)
        return fmt.show(volume)


class ListVolume(CloudLister):
    """List volumes."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--status")
        parser.add_argument("--all-projects", action="store_true")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        volumes = self.cloud.volume.list_volumes(status=args.status,
                                                 all_projects=args.all_projects)
        return COLUMNS, [fmt.row(v, COLUMNS) for v in volumes]


class ShowVolume(CloudShowOne):
    """Show a volume."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", help="volume id")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.volume.get(args.volume))


class ExtendVolume(CloudShowOne):
    """Grow a volume to SIZE GiB."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", help="volume id")
        parser.add_argument("size", type=int, metavar="SIZE", help="the new size in GiB")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.volume.extend(args.volume, args.size))


class ManageVolume(CloudShowOne):
    """Adopt an object of a backend (an LV, a file of the share, an RBD image) as a volume."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST",
                            help="the pool, <host>@<backend>#<pool> (volume host / pool list)")
        parser.add_argument("source_name", metavar="SOURCE_NAME",
                            help="the backend's name of the object")
        parser.add_argument("--name")
        parser.add_argument("--type", dest="volume_type")
        parser.add_argument("--availability-zone")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.volume
        volume = api.manage(args.host, {"source-name": args.source_name}, name=args.name,
                            volume_type=args.volume_type,
                            availability_zone=args.availability_zone, wait=False)
        if args.wait:
            volume = self.wait_for(
                f"volume {volume.id}", lambda: api.get(volume.id, include_deleted=True),
                lambda v: v.status, lambda v: v.status in _SETTLED,
                args.timeout or self.cloud.conf.volume.operation_timeout)
        return fmt.show(volume)


class MigrateVolume(CloudShowOne):
    """Move a detached volume to another backend of its volume host, keeping its id."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", help="volume id")
        parser.add_argument("--host", metavar="HOST",
                            help="the pool, <host>@<backend>#<pool> (default: the scheduler "
                            "picks one)")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.volume
        volume = api.migrate(args.volume, args.host, wait=False)
        return fmt.show(self._settled(api, volume.id, args))

    def _settled(self, api: Any, volume_id: str, args: argparse.Namespace) -> Any:
        if not args.wait:
            return api.get(volume_id)
        return self.wait_for(
            f"volume {volume_id}", lambda: api.get(volume_id, include_deleted=True),
            lambda v: v.status, lambda v: v.status in _SETTLED,
            args.timeout or self.cloud.conf.volume.operation_timeout)


class RetypeVolume(MigrateVolume):
    """Change a volume's type; --migration-policy on-demand lets it move when its backend
    cannot serve the new type."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(MigrateVolume, self).get_parser(prog_name)
        parser.add_argument("volume", help="volume id")
        parser.add_argument("volume_type", metavar="TYPE", help="the new type (name or id)")
        parser.add_argument("--migration-policy", choices=("never", "on-demand"),
                            default="never")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.volume
        volume = api.retype(args.volume, args.volume_type,
                            migration_policy=args.migration_policy, wait=False)
        return fmt.show(self._settled(api, volume.id, args))


class ReimageVolume(MigrateVolume):
    """Write an image over a detached volume's data."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(MigrateVolume, self).get_parser(prog_name)
        parser.add_argument("volume", help="volume id")
        parser.add_argument("image", metavar="IMAGE_ID")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.volume
        volume = api.reimage(args.volume, args.image, wait=False)
        return fmt.show(self._settled(api, volume.id, args))


class UnmanageVolume(CloudCommand):
    """Give volumes up, keeping their objects and data on the backend."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", nargs="+", help="volume id")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for volume in args.volume:
            self.cloud.volume.unmanage(volume)


class DeleteVolume(CloudCommand):
    """Delete volumes."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", nargs="+", help="volume id")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for volume in args.volume:
            self.cloud.volume.delete(volume)


class CreateSnapshot(CloudShowOne):
    """Snapshot a volume."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", help="volume id")
        parser.add_argument("--name")
        parser.add_argument("--force", action="store_true", help="even if it is attached")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.volume
        snapshot = api.create_snapshot(args.volume, name=args.name, force=args.force,
                                       wait=False)
        if args.wait:
            snapshot = self.wait_for(
                f"snapshot {snapshot.id}",
                lambda: api.get_snapshot(snapshot.id, include_deleted=True),
                lambda s: s.status, lambda s: s.status in _SNAPSHOT_SETTLED,
                args.timeout or self.cloud.conf.volume.operation_timeout)
        return fmt.show(snapshot)


class ListSnapshot(CloudLister):
    """List volume snapshots."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--volume", metavar="VOLUME_ID")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        snapshots = self.cloud.volume.list_snapshots(args.volume)
        return SNAPSHOT_COLUMNS, [fmt.row(s, SNAPSHOT_COLUMNS) for s in snapshots]


class ShowSnapshot(CloudShowOne):
    """Show a volume snapshot."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("snapshot", help="snapshot id")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.volume.get_snapshot(args.snapshot))


class DeleteSnapshot(CloudCommand):
    """Delete volume snapshots."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("snapshot", nargs="+", help="snapshot id")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for snapshot in args.snapshot:
            self.cloud.volume.delete_snapshot(snapshot)
