"""The ``stackcore-client`` application: cliff's App over the ``stackcore.cli.commands``
entry points, one API-only Cloud per invocation."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, TextIO

from cliff.app import App
from cliff.commandmanager import CommandManager

from stackcore import exception
from stackcore.version import __version__

#: the entry-point namespace the commands are registered under (setup.cfg)
NAMESPACE = "stackcore.cli.commands"
CONFIG_ENV = "STACKCORE_CONFIG_FILE"


class ClientApp(App):
    NAME = "stackcore-client"

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        super().__init__(
            description="Manage the resources of a stackcore deployment (servers, volumes, "
                        "networks...) through its database and RabbitMQ.",
            version=__version__,
            command_manager=CommandManager(NAMESPACE),
            deferred_help=True,
            stdout=stdout,
            stderr=stderr,
        )
        self._cloud: Any = None
        self._console: logging.Handler | None = None

    def configure_logging(self) -> None:
        """Warnings and errors on stderr; ``-v`` adds INFO, ``-vv`` DEBUG. (cliff's default
        shows INFO, where oslo libraries announce what they load on every invocation: noise
        around the one line of output a script reads.)"""
        level = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}.get(
            self.options.verbose_level, logging.DEBUG)
        root = logging.getLogger()
        root.setLevel(min(root.getEffectiveLevel(), level))
        self._console = logging.StreamHandler(self.stderr)
        self._console.setLevel(level)
        self._console.setFormatter(logging.Formatter(self.CONSOLE_MESSAGE_FORMAT))
        root.addHandler(self._console)
        # Libraries' deprecation warnings are for their developers, not the operator.
        logging.getLogger("py.warnings").setLevel(
            logging.WARNING if self.options.verbose_level > 1 else logging.ERROR)

    def build_option_parser(self, description: str | None, version: str | None,
                            argparse_kwargs: dict[str, Any] | None = None
                            ) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument(
            "--config-file", default=os.environ.get(CONFIG_ENV), metavar="PATH",
            help=f"the deployment's config file: [database] connection and transport_url "
                 f"(default: ${CONFIG_ENV})")
        return parser

    @property
    def cloud(self) -> Any:
        """The deployment's family APIs, running no service (built on first use, so that
        ``--help`` needs no deployment)."""
        if self._cloud is None:
            if not self.options.config_file:
                raise exception.ConfigError(
                    f"no deployment given: pass --config-file or set ${CONFIG_ENV}")
            from stackcore.cloud import Cloud

            self._cloud = Cloud(self.options.config_file, services=())
        return self._cloud

    def clean_up(self, cmd: Any, result: int, err: BaseException | None) -> None:
        if self._console is not None:  # an App run in-process (tests) leaves no handler
            logging.getLogger().removeHandler(self._console)
            self._console = None
        if self._cloud is not None:
            self._cloud.close()
            self._cloud = None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    logging.captureWarnings(True)  # through the console handler's level (configure_logging)
    # No arguments would start cliff's interactive shell, which a client of a deployment
    # does not offer: show the help instead.
    return int(ClientApp().run(args or ["--help"]))


if __name__ == "__main__":
    sys.exit(main())
