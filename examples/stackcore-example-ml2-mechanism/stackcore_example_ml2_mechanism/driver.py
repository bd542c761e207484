"""``jsonlog``: realises networks and ports as JSON records (its "backend" is a directory),
and binds flat and VLAN segments of the physical networks it is given.

The shape of every mechanism driver: validate in ``*_precommit`` (inside the transaction: no
backend call, no state kept), call the backend in ``*_postcommit`` (after commit) and undo it in
the delete hooks, bind side-effect free and repeatably, and say why when it does not bind.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from oslo_config import cfg

from stackcore.network import MechanismDriver, NetworkContext, PortContext

OPTS = [
    cfg.StrOpt("directory", default="jsonlog", help="Where records are kept; relative paths "
               "are under state_path."),
    cfg.ListOpt("physical_networks", default=["physnet1"],
                help="Physical networks whose flat and VLAN segments this driver binds."),
]


class JsonLogMechanismDriver(MechanismDriver):
    VERSION = "1.0.0"
    capabilities: ClassVar[Mapping[str, bool]] = {"bind_port": True}

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("jsonlog", OPTS)]

    def initialize(self) -> None:
        directory = self.conf.jsonlog.directory
        self.root = directory if os.path.isabs(directory) else os.path.join(
            self.conf.state_path, directory)
        os.makedirs(self.root, exist_ok=True)

    # --- the "backend": one JSON file per realised resource ---------------------------------

    def _write(self, kind: str, resource: Mapping[str, Any]) -> None:
        with open(os.path.join(self.root, f"{kind}-{resource['id']}.json"), "w") as handle:
            json.dump(dict(resource), handle, default=str)

    def _remove(self, kind: str, resource: Mapping[str, Any]) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.root, f"{kind}-{resource['id']}.json"))

    # --- hooks: the backend is called after commit, and undone on delete --------------------

    def create_network_postcommit(self, context: NetworkContext) -> None:
        self._write("network", context.current)

    def update_network_postcommit(self, context: NetworkContext) -> None:
        self._write("network", context.current)

    def delete_network_postcommit(self, context: NetworkContext) -> None:
        self._remove("network", context.current)

    def create_port_postcommit(self, context: PortContext) -> None:
        self._write("port", context.current)

    def update_port_postcommit(self, context: PortContext) -> None:
        self._write("port", context.current)

    def delete_port_postcommit(self, context: PortContext) -> None:
        self._remove("port", context.current)

    # --- binding: side-effect free, repeatable, explained ---------------------------------

    def bind_port(self, context: PortContext) -> None:
        physnets = set(self.conf.jsonlog.physical_networks)
        for segment in context.segments_to_bind:
            if segment["network_type"] not in ("flat", "vlan"):
                context.refuse(f"binds flat and vlan segments, not "
                               f"{segment['network_type']!r}", segment["id"])
            elif segment["physical_network"] not in physnets:
                context.refuse(f"physical network {segment['physical_network']!r} is not in "
                               "[jsonlog] physical_networks", segment["id"])
            else:
                context.set_binding(segment["id"], "tap", {"port_filter": False},
                                    status="ACTIVE")
                return
