"""``image create/list/show/delete/import``: the image service (``cloud.image``), whose upload
(from a file or a volume) and import show their progress in bytes."""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from stackcore import exception
from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne
from stackcore.client.progress import CountingReader, Progress

COLUMNS = ("id", "name", "status", "disk_format", "size_bytes", "visibility")

R = TypeVar("R")
T = TypeVar("T")


class CreateImage(CloudShowOne):
    """Create an image; with --file, upload its bytes (progress on stderr); with --volume,
    from a volume's data (``cloud.volume.upload_to_image``, as ``openstack image create
    --volume``)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--file", metavar="PATH", help="the image's bytes to upload")
        source.add_argument("--volume", metavar="VOLUME_ID",
                            help="the volume whose data becomes the image (raw or qcow2)")
        parser.add_argument("--disk-format", default="raw")
        parser.add_argument("--container-format", default="bare")
        parser.add_argument("--public", action="store_true")
        parser.add_argument("--store", help="the image store (default: the configured one)")
        parser.add_argument("--property", action="append", default=[], metavar="KEY=VALUE")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        properties = pairs(args.property)
        if args.volume is not None:
            for option, given in (("--public", args.public), ("--property", properties),
                                  ("--container-format", args.container_format != "bare")):
                if given:
                    raise exception.Invalid(option, "does not apply to an image made from a "
                                            "volume (--volume)", args.volume)
            volumes = self.cloud.volume
            # one blocking call, run beside the display, which reads the progress the upload
            # records on the volume (the driver's copy, then the bytes into the store)
            made = _beside(self, f"uploading volume {args.volume} into an image",
                           lambda: volumes.upload_to_image(args.volume, args.name,
                                                           disk_format=args.disk_format,
                                                           store=args.store),
                           lambda: volumes.get(args.volume), lambda volume: volume.status,
                           24 * 3600.0)
            return fmt.show(self.cloud.image.get(made["id"]))
        # The file is opened before the image is created: a wrong path leaves no queued image.
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(_open(args.file)) if args.file else None
            image = self.cloud.image.create(
                args.name, disk_format=args.disk_format,
                container_format=args.container_format,
                visibility="public" if args.public else "private", properties=properties)
            if handle is not None:
                size = os.fstat(handle.fileno()).st_size
                bar = stack.enter_context(
                    Progress(self.app.stderr, f"uploading image {image.id}", total=size))
                try:
                    image = self.cloud.image.upload(image.id, CountingReader(handle, bar),
                                                    size=size, store=args.store)
                except exception.StackcoreError:
                    # A refused upload keeps the image queued; one command asked for an
                    # image with these bytes, so it leaves nothing behind.
                    self.cloud.image.delete(image.id)
                    raise
        return fmt.show(image)


class ImportImage(CloudShowOne):
    """Fetch a queued image's bytes from an http(s) URL into a store; the bytes done and the
    total, as the image reports them (its ``progress``), on stderr while it runs."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("image", help="image id (queued: made by image create)")
        parser.add_argument("--url", required=True, help="http(s) URL of the bytes")
        parser.add_argument("--store", help="the image store (default: the configured one)")
        parser.add_argument("--timeout", type=float, default=24 * 3600.0, metavar="SECONDS",
                            help="give up waiting after this long (default: a day)")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        api = self.cloud.image
        # The import is one blocking API call; it runs beside the display, which reads the
        # progress the import records on the image (what another client would see too).
        image = _beside(self, f"importing image {args.image}",
                        lambda: api.import_from_url(args.image, args.url, store=args.store),
                        lambda: api.get(args.image), lambda image: image.status,
                        args.timeout)
        return fmt.show(image)


def _beside(command: CloudShowOne, what: str, call: Callable[[], R], read: Callable[[], T],
            state: Callable[[T], str], timeout: float) -> R:
    """``call()`` in a thread of its own while the command shows the bytes and state of the
    resource ``read`` returns (its recorded progress); ``call``'s result, or its error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as err:  # noqa: BLE001 - raised again below, in the command
            outcome["error"] = err

    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    command.wait_for(what, read, state, lambda _: not worker.is_alive(), timeout, copies=True)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result: R = outcome["result"]
    return result


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as err:
        raise exception.Invalid("--file", f"{path}: {err.strerror or err}", path) from None


def pairs(texts: list[str]) -> dict[str, str]:
    """``--property KEY=VALUE`` options as a mapping (one error naming a malformed one)."""
    return dict(_pair(text) for text in texts)


def _pair(text: str) -> tuple[str, str]:
    key, sep, val = text.partition("=")
    if not sep or not key:
        raise exception.Invalid("--property", "expected KEY=VALUE", text)
    return key, val


class ListImage(CloudLister):
    """List images."""

    def take_action(self, args: argparse.Namespace) -> Any:
        return COLUMNS, [fmt.row(i, COLUMNS) for i in self.cloud.image.list_images()]


class ShowImage(CloudShowOne):
    """Show an image."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("image", help="image id")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.image.get(args.image))


class DeleteImage(CloudCommand):
    """Delete images (and their stored bytes)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("image", nargs="+", help="image id")
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for image in args.image:
            self.cloud.image.delete(image)


class _OneImage(CloudShowOne):
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("image", help="image id")
        return parser


class SetImage(_OneImage):
    """Rename an image or change its protection."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name")
        protection = parser.add_mutually_exclusive_group()
        protection.add_argument("--protected", dest="protected", action="store_true",
                                default=None, help="refuse deletes")
        protection.add_argument("--unprotected", dest="protected", action="store_false")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.image.update(args.image, name=args.name,
                                                protected=args.protected))


class DeactivateImage(_OneImage):
    """Hide an active image from use (no download, no new server or volume from it)."""

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.image.deactivate(args.image))


class ReactivateImage(_OneImage):
    """Make a deactivated image active again."""

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.image.reactivate(args.image))
