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
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore import exception, families, notifications, rpc
from stackcore.db import api as db_api
from stackcore.project.context import RequestContext
from stackcore.project.scope import ScopedAPI
from stackcore.service import STOP_TIMEOUT, Service, check_intervals

if TYPE_CHECKING:
    from stackcore.compute.api import ComputeAPI
    from stackcore.image.api import ImageAPI
    from stackcore.network.api import NetworkAPI
    from stackcore.project.api import ProjectAPI
    from stackcore.volume.api import VolumeAPI

LOG = logging.getLogger(__name__)


class ProjectView:
    """The family APIs bound to one request context (``cloud.as_project(context)``): the same
    attributes as the Cloud's (``compute``, ``volume``, ``network``, ``project`` ...)."""

    def __init__(self, context: RequestContext, apis: Mapping[str, Any]) -> None:
        self.context = context
        for name, api in apis.items():
            setattr(self, name, api)

    compute: ComputeAPI
    image: ImageAPI
    network: NetworkAPI
    project: ProjectAPI
    volume: VolumeAPI

#: the services a process runs by default (each family says which it provides)
ALL_SERVICES = families.services()
#: services a process runs only when it names them (they listen on a port: the metadata
#: service), see ``Family.named_services``
NAMED_SERVICES = families.named_services()


class Cloud:
    """A stackcore cloud: configuration, database, RPC, services and the family APIs
    (``cloud.compute``, ``cloud.volume``, ``cloud.network``: one attribute per family).

    :param config_file: an oslo.config file (or several); absent means the embedded default.
    :param fake_hosts: shortcut for the embedded default: run this many fake compute hosts
        (``compute-1`` ... ``compute-N``).
    :param overrides: ``{group: {option: value}}`` applied over the files.
    :param services: which services this process runs (``scheduler``, ``compute``, ``volume``,
        ``network``... default: all of them); ``()`` for an API-only client. The named services
        (``metadata``) run only where they are listed here.
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
        unknown = sorted(set(services) - set(ALL_SERVICES) - set(NAMED_SERVICES))
        if unknown:
            raise exception.ConfigError(
                f"unknown service(s) {', '.join(unknown)} (known: "
                f"{', '.join(ALL_SERVICES + NAMED_SERVICES)})"
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
        self._runtimes: list[tuple[families.Family, families.Runtime]] = []
        self._apis: dict[str, Any] = {}
        self._started: list[families.Runtime] = []
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

        # Every family loads (and verifies) its plugins before anything starts, so a bad one
        # fails start-up, and registers their options so that validate_all checks them too.
        for fam in families.all_families():
            runtime = fam.runtime(conf, services)
            if runtime is not None:
                self._runtimes.append((fam, runtime))
        for _fam, runtime in self._runtimes:
            runtime.load_plugins(self._overrides)
        self._apply_overrides(only_registered=False)
        sc_conf.validate_all(conf)
        check_intervals(conf)

        url = conf.database.connection or f"sqlite:///{conf.state_path}/stackcore.sqlite"
        self.db = db_api.Database(url)
        if conf.database.auto_migrate:
            self.db.upgrade()
        else:
            from stackcore.db import schema

            schema.check_current(self.db)
        self.transport = rpc.get_transport(conf)
        #: one per Cloud; each service's manager sends through it as itself (see _run)
        self.notifier = notifications.build(conf)
        apis: dict[str, Any] = {}
        from stackcore.project import opts as project_opts
        from stackcore.project.policy import Policy
        from stackcore.project.quota import Quotas

        self.policy = Policy(conf)
        self.policy.check_config()
        self.quotas = Quotas(conf, project_opts.resources())
        ctx = families.StartContext(conf, self.db, self.transport, apis, self._run, self.policy,
                                    self.quotas)
        for fam, runtime in self._runtimes:
            api = runtime.build_api(ctx)
            if isinstance(api, ScopedAPI):
                api.use(self.policy, self.quotas)
            apis[fam.name] = api
            if hasattr(api, "notifier"):  # an API that emits notifications itself
                api.notifier = self.notifier.prepare(f"{fam.name}-api", conf.host)
            setattr(self, fam.name, api)
        self._apis = dict(apis)
        # Families start in registration order: what a family's services call (compute
        # calls the volume service, agents report to the network service) is up before them.
        for _fam, runtime in self._runtimes:
            self._started.append(runtime)
            runtime.start(ctx)

    compute: ComputeAPI
    image: ImageAPI
    network: NetworkAPI
    project: ProjectAPI
    volume: VolumeAPI

    def _run(self, manager: Any, binary: str, host: str, zone: str = "nova") -> Service:
        if hasattr(manager, "notifier"):  # a manager that emits notifications
            manager.notifier = self.notifier.prepare(binary.removeprefix("stackcore-"), host)
        service = Service(self.conf, self.db, self.transport, manager, binary=binary, host=host,
                          availability_zone=zone)
        service.start()
        self._services.append(service)
        return service

    def as_project(self, context: RequestContext) -> ProjectView:
        """The family APIs acting for ``context`` (who asks: user, project, roles): every call
        checks its policy rule for that context, sees that project's resources and counts in
        its quotas. ``cloud.compute`` etc. themselves act for the embedded default's admin."""
        return ProjectView(context, {name: api.bind(context) if isinstance(api, ScopedAPI)
                                     else api for name, api in self._apis.items()})

    @property
    def services(self) -> list[Service]:
        """The services running in this process."""
        return list(self._services)

    def tick(self) -> None:
        """Run one round of every local service's periodic work now (stats, heartbeats)."""
        for service in self._services:
            service.tick()

    def close(self) -> None:
        """Stop the services (waiting at most ``service.STOP_TIMEOUT`` seconds for their work
        in progress), close RPC and the database, remove a private state directory."""
        if self._closed:
            return
        self._closed = True
        for runtime in reversed(self._started):
            try:
                runtime.stop()
            except Exception:
                LOG.exception("stopping %s failed", type(runtime).__module__)
        self._started.clear()
        # Every service stops taking work first, then all wait for their work in progress
        # together: stopping costs the longest wait, not their sum.
        for service in reversed(self._services):
            try:
                service.request_stop()
            except Exception:
                LOG.exception("stopping %s failed", service.binary)
        deadline = time.monotonic() + STOP_TIMEOUT
        for service in reversed(self._services):
            service.wait_stopped(deadline)
        self._services.clear()
        if getattr(self, "transport", None) is not None:
            self.transport.close()
        if getattr(self, "notifier", None) is not None:
            self.notifier.close()
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
