"""``stackcore.Cloud``: the one object a caller needs.

``Cloud()`` with no arguments is the embedded default: SQLite in a private temporary directory,
in-process RPC, the scheduler and one compute service per configured host (fake hypervisor)
running in this process. With a config file it can point at PostgreSQL and RabbitMQ and run
only some services (or none: an API-only client of services running elsewhere).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore import exception, rpc
from stackcore.compute import driver as compute_driver
from stackcore.compute.api import ComputeAPI
from stackcore.db import api as db_api
from stackcore.plugins import loader
from stackcore.service import Service

LOG = logging.getLogger(__name__)

ALL_SERVICES = ("scheduler", "compute", "volume", "network")


class Cloud:
    """A stackcore cloud: configuration, database, RPC, services and the family APIs.

    :param config_file: an oslo.config file (or several); absent means the embedded default.
    :param fake_hosts: shortcut for the embedded default: run this many fake compute hosts
        (``compute-1`` ... ``compute-N``).
    :param overrides: ``{group: {option: value}}`` applied over the files.
    :param services: which services this process runs (``scheduler``, ``compute``); ``()`` for
        an API-only client.
    """

    def __init__(
        self,
        config_file: str | Sequence[str] | None = None,
        *,
        fake_hosts: int | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        services: Sequence[str] = ALL_SERVICES,
    ) -> None:
        files = [config_file] if isinstance(config_file, str) else list(config_file or [])
        for path in files:
            if not os.path.isfile(path):
                raise exception.ConfigError(f"config file {path!r} does not exist")
        unknown = sorted(set(services) - set(ALL_SERVICES))
        if unknown:
            raise exception.ConfigError(
                f"unknown service(s) {', '.join(unknown)} (known: {', '.join(ALL_SERVICES)})"
            )
        # Overrides for plugin option groups can only be set once the plugin has registered
        # them: core groups are applied now, the rest after plugins load (see _start).
        self._overrides = {g: dict(v) for g, v in (overrides or {}).items()}
        self.conf: cfg.ConfigOpts = sc_conf.load(files)
        self._apply_overrides(only_registered=True)
        if fake_hosts is not None:
            if isinstance(fake_hosts, bool) or not isinstance(fake_hosts, int) or fake_hosts < 0:
                raise exception.Invalid("fake_hosts", "must be an integer >= 0", fake_hosts)
            sc_conf.set_override(self.conf, "compute", "hosts",
                                 [f"compute-{i + 1}" for i in range(fake_hosts)])
        self._services: list[Service] = []
        self._agents: list[Any] = []
        self._own_state_dir: str | None = None
        self._closed = False
        try:
            self._start(services)
        except BaseException:
            self.close()
            raise

    def _apply_overrides(self, only_registered: bool) -> None:
        for group, values in list(self._overrides.items()):
            registered = group == "DEFAULT" or group in self.conf
            if only_registered and not registered:
                continue
            for name, value in values.items():
                sc_conf.set_override(self.conf, group, name, value)
            del self._overrides[group]

    def _start(self, services: Sequence[str]) -> None:
        conf = self.conf
        if not conf.state_path:
            self._own_state_dir = tempfile.mkdtemp(prefix="stackcore-")
            sc_conf.set_override(conf, "DEFAULT", "state_path", self._own_state_dir)
        os.makedirs(conf.state_path, exist_ok=True)

        # Load every plugin before anything starts, so a bad one fails start-up, and register
        # its options so that validate_all checks them too.
        self._compute_driver: loader.Plugin | None = None
        if "compute" in services and conf.compute.hosts:
            self._compute_driver = loader.load_one(
                compute_driver.NAMESPACE, conf.compute.driver, compute_driver.CONTRACT
            )
            sc_conf.register(conf, self._compute_driver.cls.list_opts())
        self._volume_backends: list[Any] = []
        if "volume" in services and conf.volume.enabled_backends:
            from stackcore.volume import backends as volume_backends

            for backend in volume_backends.register_backend_opts(conf):
                pending = self._overrides.get(backend, {})  # needed before the driver loads
                if "volume_driver" in pending:
                    sc_conf.set_override(conf, backend, "volume_driver", pending["volume_driver"])
            self._volume_backends = volume_backends.load_drivers(conf)
        from stackcore.network.api import load_plugins as load_network_plugins

        self._network_plugins = load_network_plugins(conf)
        self._agent_plugins: list[loader.Plugin] = []
        if "network" in services and conf.network.local_agents:
            from stackcore.network import agent_contract

            self._agent_plugins = loader.load_ordered(
                agent_contract.NAMESPACE, conf.network.local_agents, agent_contract.CONTRACT
            )
            for plugin in self._agent_plugins:
                sc_conf.register(conf, plugin.cls.list_opts())
        self._apply_overrides(only_registered=False)
        sc_conf.validate_all(conf)

        url = conf.database.connection or f"sqlite:///{conf.state_path}/stackcore.sqlite"
        self.db = db_api.Database(url)
        if conf.database.auto_migrate:
            self.db.upgrade()
        self.transport = rpc.get_transport(conf)
        from stackcore.volume.api import VolumeAPI

        self.volume = VolumeAPI(conf, self.db, self.transport)
        from stackcore.network.api import NetworkAPI

        self.network = NetworkAPI(conf, self.db, self.transport, self._network_plugins)
        self.compute = ComputeAPI(conf, self.db, self.transport, network=self.network,
                                  volume=self.volume)

        if "scheduler" in services:
            from stackcore.scheduler.manager import SchedulerManager

            self._run(SchedulerManager(conf, self.db), "stackcore-scheduler", conf.host)
        if self._compute_driver is not None:
            from stackcore.compute.manager import BINARY, ComputeManager

            for host in conf.compute.hosts:
                driver = self._compute_driver.cls(conf, host)
                manager = ComputeManager(conf, self.db, host, driver, conf.compute.driver,
                                         transport=self.transport, network_api=self.network,
                                         volume_api=self.volume)
                self._run(manager, BINARY, host, conf.compute.availability_zone)
        if self._volume_backends:
            from stackcore.volume import backends as volume_backends
            from stackcore.volume.manager import BINARY as VOLUME_BINARY

            for vol_manager, vol_host, zone in volume_backends.build_managers(
                conf, self.db, self._volume_backends
            ):
                self._run(vol_manager, VOLUME_BINARY, vol_host, zone)
        if "network" in services:
            from stackcore.network.agents import AgentStateEndpoint

            endpoint = AgentStateEndpoint(conf, self.db, self.network.plugin.rebind_failed_ports)
            self._run(endpoint, "stackcore-network", conf.host)
            from stackcore.network.agent_rpc import AgentRPCEndpoint

            self._run(AgentRPCEndpoint(conf, self.db, self.network.plugin.mechanism_manager),
                      "stackcore-network-agents", conf.host)
            # Local L2 agents last: they report to and query the endpoints started above.
            for plugin in self._agent_plugins:
                agent = plugin.cls(conf, self.transport)
                agent.start()
                self._agents.append(agent)

    def _run(self, manager: Any, binary: str, host: str, zone: str = "nova") -> Service:
        service = Service(self.conf, self.db, self.transport, manager, binary=binary, host=host,
                          availability_zone=zone)
        service.start()
        self._services.append(service)
        return service

    @property
    def services(self) -> list[Service]:
        """The services running in this process."""
        return list(self._services)

    def tick(self) -> None:
        """Run one round of every local service's periodic work now (stats, heartbeats)."""
        for service in self._services:
            service.tick()

    def close(self) -> None:
        """Stop the services, close RPC and the database, remove a private state directory."""
        if self._closed:
            return
        self._closed = True
        for agent in reversed(self._agents):
            try:
                agent.stop()
            except Exception:
                LOG.exception("stopping agent %s failed", type(agent).__name__)
        self._agents.clear()
        for service in reversed(self._services):
            try:
                service.stop()
            except Exception:
                LOG.exception("stopping %s failed", service.binary)
        self._services.clear()
        if getattr(self, "transport", None) is not None:
            self.transport.close()
        if getattr(self, "db", None) is not None:
            self.db.dispose()
        if self._own_state_dir:
            shutil.rmtree(self._own_state_dir, ignore_errors=True)

    def __enter__(self) -> Cloud:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
