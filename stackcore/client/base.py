"""The base of every resource command: the cloud it talks to, errors as one line, and
``--wait`` with progress."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from stackcore import exception, wait
from stackcore.client.progress import Progress

if TYPE_CHECKING:
    from stackcore.client.app import ClientApp

T = TypeVar("T")


class CloudCommand(Command):
    """A command of ``stackcore-client``: ``self.cloud`` is the API-only client of the
    deployment; a StackcoreError becomes one line on stderr and exit status 1."""

    @property
    def cloud(self) -> Any:
        return cast("ClientApp", self.app).cloud

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return int(super().run(parsed_args) or 0)
        except exception.StackcoreError as err:
            # The message names the culprit already (NotFound: "server 'x' not found"):
            # a traceback would only hide it.
            self.app.stderr.write(f"{self.app.NAME}: {type(err).__name__}: {err}\n")
            return 1

    def wait_for(self, what: str, read: Callable[[], T], state: Callable[[T], str],
                 done: Callable[[T], bool], timeout: float, copies: bool = False) -> T:
        """Re-read a resource until ``done``, showing its state changes and the time taken
        (a bar on a terminal, lines otherwise); OperationTimeout after ``timeout``.
        ``copies``: the resource may run a long copy whose bytes it reports
        (:mod:`stackcore.progress`): a byte bar from the start."""
        with Progress(self.app.stderr, what, counts_bytes=copies) as progress:
            def check(value: T) -> bool:
                # a copy running on the resource (stackcore.progress): its bytes too
                running = getattr(value, "progress", None)
                if running is not None:
                    progress.update(running.bytes_done, state=state(value),
                                    total=running.bytes_total)
                else:
                    progress.update(state=state(value))
                return done(value)

            return wait.until(self.cloud.db, read, check, timeout,
                              lambda v: f"{what}: still {state(v)}", max_interval=0.2)


class CloudLister(CloudCommand, Lister):
    pass


class CloudShowOne(CloudCommand, ShowOne):
    pass


def add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true",
                        help="wait until the resource is ready (or failed), showing progress")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="how long --wait waits (default: the deployment's configured "
                             "operation timeout)")
