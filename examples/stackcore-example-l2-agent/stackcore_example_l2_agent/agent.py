"""``dirwire``: an L2 agent whose "host backend" is a directory.

``<directory>/<host>/devices/<port id>`` is a device the hypervisor plugged;
``<directory>/<host>/wired/<port id>`` (the segment, as JSON) means the port's traffic passes.
Everything else is what every agent does: report its state, ask the server which ports are
bound to its host, make the backend match (wire plugged ports that are up, unwire the rest),
report each port up or down when that changes - over RPC only, never the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from oslo_config import cfg

from stackcore.network import AGENT_OPTS, L2AgentPlugin
from stackcore.network.agents import AgentRPCAPI, AgentStateRPCAPI

if TYPE_CHECKING:
    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt("directory", default="dirwire", help="The agent's backend directory; relative "
               "paths are under state_path."),
    cfg.DictOpt("mappings", default={"physnet1": "wire0"},
                help="physnet:device pairs this host can wire (reported to the server)."),
]


class DirWireAgent(L2AgentPlugin):
    VERSION: ClassVar[str] = "1.0.0"
    AGENT_TYPE: ClassVar[str] = "DirWire agent"

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("agent", AGENT_OPTS), ("dirwire", OPTS)]

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport) -> None:
        self.conf = conf
        self.host: str = conf.host
        directory = conf.dirwire.directory
        base = directory if os.path.isabs(directory) else os.path.join(conf.state_path,
                                                                       directory)
        self.devices = os.path.join(base, self.host, "devices")
        self.wired = os.path.join(base, self.host, "wired")
        self._state = AgentStateRPCAPI(transport)
        self._rpc = AgentRPCAPI(transport)
        self._start_flag = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        for path in (self.devices, self.wired):
            os.makedirs(path, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"dirwire-{self.host}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        next_report = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + self.conf.agent.report_interval
                    self._report()
                self._sync()
            except Exception:  # an agent never dies: the next pass tries again
                LOG.exception("dirwire agent on %s", self.host)
            self._stop.wait(self.conf.agent.polling_interval)

    def _report(self) -> None:
        self._state.report_state({
            "agent_type": self.AGENT_TYPE, "binary": "stackcore-dirwire-agent",
            "host": self.host, "configurations": {
                "network_types": ["flat", "vlan"], "mappings": dict(self.conf.dirwire.mappings)},
        }, start_flag=self._start_flag)
        self._start_flag = False

    def _sync(self) -> None:
        bound = {d["port_id"]: d for d in self._rpc.get_devices_for_host(self.host,
                                                                         self.AGENT_TYPE)}
        plugged = set(os.listdir(self.devices))
        for port_id in set(os.listdir(self.wired)) - {
                p for p, d in bound.items() if p in plugged and d["admin_state_up"]}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.wired, port_id))
        for port_id, device in bound.items():
            up = port_id in plugged and device["admin_state_up"]
            if up:
                with open(os.path.join(self.wired, port_id), "w") as handle:
                    json.dump(device["segment"], handle)
            if up and device["status"] != "ACTIVE":
                self._rpc.update_device_up(port_id, self.host)
            elif not up and device["status"] == "ACTIVE":
                self._rpc.update_device_down(port_id, self.host)

    # --- observation (conformance kit) ------------------------------------------------------

    def plug_test_device(self, port: Mapping[str, Any]) -> None:
        os.makedirs(self.devices, exist_ok=True)
        with open(os.path.join(self.devices, str(port["id"])), "w") as handle:
            json.dump({"mac_address": port.get("mac_address")}, handle)

    def unplug_test_device(self, port: Mapping[str, Any]) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.devices, str(port["id"])))

    def wired_ports(self) -> set[str]:
        return set(os.listdir(self.wired)) if os.path.isdir(self.wired) else set()
