"""The compute manager: one per host, the only caller of that host's hypervisor driver.

It owns every state transition of the servers on its host. Each lifecycle step follows the same
pattern: set the task state, call the driver, set the resulting vm/power state and clear the
task state - or, if the driver raised, run :meth:`ComputeManager._fail`, which records a fault,
moves the server to ERROR, clears the task state, gives back the host claim when the server never
became usable, and asks the driver to destroy what it half made. Nothing is left BUILDING or
DELETING after a failure, and :meth:`init_host` repairs what a crash or kill left behind.

Wiring to the other families, on the host the scheduler chose:

* network - the manager calls the network API (``NetworkAPI``) as a library on the shared
  database: ``allocate_ports_for_instance`` binds the server's ports on this host before
  ``spawn`` (the ML2 plugin keeps all its state in the database and every process of a cloud
  loads the same mechanism drivers, as every neutron-server worker does, so there is no
  network service to call); a binding failure fails the build with the drivers' reasons in the
  fault and frees the ports, so an alternate host binds them afresh. Terminate releases them
  after ``destroy``.
* volume - the manager calls the volume API, which reaches the volume manager of the
  volume's backend over RPC: ``attach`` exports the volume to this host's connector and returns
  the ``connection_info`` given to the driver; ``detach`` ends the export. Each volume of a
  server has a :class:`~stackcore.compute.models.BlockDeviceMapping` whose status records how
  far an attach or detach got, so a restart finishes or undoes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception, faults, managers, notifications
from stackcore.compute import (
    block_devices,
    evacuation,
    live_migration,
    migration,
    models,
    objects,
    stats,
)
from stackcore.compute.driver import HypervisorDriver, effective_capabilities
from stackcore.compute.family import COMPUTE_BINARY as BINARY
from stackcore.compute.models import BdmStatus, BlockDeviceMapping, NetworkRequest
from stackcore.compute.placement import claims
from stackcore.compute.states import TaskState, VmState
from stackcore.db import api as db_api
from stackcore.db import models as db_models
from stackcore.image import cache as image_cache
from stackcore.image import models as image_models
from stackcore.rpc import Target, Transport, instance_events

if TYPE_CHECKING:
    from stackcore.image.api import ImageAPI
    from stackcore.image.store import ImageStore
    from stackcore.network.api import NetworkAPI
    from stackcore.volume.api import VolumeAPI

LOG = logging.getLogger(__name__)
TOPIC = instance_events.COMPUTE_TOPIC
T = TypeVar("T")

#: the figures of a hypervisor stats report published in each ``compute.stats`` sample
_SAMPLED_STATS = ("hypervisor_hostname", "hypervisor_type", "vcpus", "vcpus_used", "memory_mb",
                  "memory_mb_used", "local_gb", "local_gb_used")

#: seconds a guest is given to shut down cleanly before a cold snapshot of a driver without
#: ``suspend`` (then it is powered off hard, as ``power_off`` does)
_COLD_SNAPSHOT_SHUTDOWN = 60

#: the compute API this manager serves (instance_events speaks 1.3 of it)
API_VERSION = "1.6"
#: task states the generic reconciliation leaves to their own repair (a move's owner)
_MOVE_TASKS = migration.RESIZE_TASKS | evacuation.TASKS | live_migration.TASKS

_POWER_TO_VM = {
    objects.PowerState.RUNNING: VmState.ACTIVE,
    objects.PowerState.SHUTDOWN: VmState.STOPPED,
    objects.PowerState.PAUSED: VmState.PAUSED,
    objects.PowerState.SUSPENDED: VmState.SUSPENDED,
}


class ComputeManager:
    """RPC endpoint of the compute service on one host (topic ``compute``, server = host).

    API versions: 1.0 build/terminate/reboot/stop/start; 1.1 attach_volume/detach_volume;
    1.2 pause/unpause, suspend/resume, get_console_output, snapshot_instance,
    rebuild_instance, rescue/unrescue; 1.3 external_instance_event; 1.4 resize and cold
    migration (resize_instance, finish_resize, confirm_resize, revert_resize,
    finish_revert_resize: :mod:`stackcore.compute.migration`); 1.5 evacuate_instance
    (:mod:`stackcore.compute.evacuation`); 1.6 live migration (live_migrate_instance,
    pre_live_migration, rollback_live_migration_at_destination,
    post_live_migration_at_destination, complete_live_migration, abort_live_migration,
    live_migration_arrived: :mod:`stackcore.compute.live_migration`).

    ``network_api`` and ``volume_api`` are the cloud's family APIs (``cloud.network``,
    ``cloud.volume``); without them, servers asking for ports or volumes fail to build.
    ``image_stores`` are the cloud's image stores (``cloud.image.stores``): servers of an
    uploaded image boot from this host's image cache (:mod:`stackcore.image.cache`), filled
    from them. ``image_api`` (``cloud.image``) takes the snapshots of ``snapshot_instance``.
    """

    target = Target(TOPIC, version=API_VERSION)
    #: where lifecycle events and stats samples go (the Cloud sets its own)
    notifier: notifications.Notifier = notifications.NULL

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        db: db_api.Database,
        host: str,
        driver: HypervisorDriver,
        driver_name: str,
        transport: Transport | None = None,
        network_api: NetworkAPI | None = None,
        volume_api: VolumeAPI | None = None,
        image_stores: Mapping[str, ImageStore] | None = None,
        image_api: ImageAPI | None = None,
    ) -> None:
        self.conf = conf
        self.image_api = image_api
        self.image_cache = image_cache.ImageCache.for_host(conf, host, image_stores or {},
                                                           in_use=self.images_in_use)
        self.network_api = network_api
        self.volume_api = volume_api
        self.db = db
        self.host = host
        self.driver = driver
        self.driver_name = driver_name
        self.unknown_instances: list[str] = []
        # With a transport, a failed spawn is rescheduled to an alternate host (bounded by
        # [scheduler] max_attempts) before the server is put in ERROR.
        self._transport = transport
        self._locks = managers.KeyedLocks()
        self._orphans = managers.Orphans()
        self.migrations = migration.HostMigrations(self)
        self.evacuations = evacuation.HostEvacuations(self)
        self.live_migrations = live_migration.HostLiveMigrations(self)

    # --- plumbing --------------------------------------------------------------------------

    def _instance_lock(self, uuid: str) -> contextlib.AbstractContextManager[None]:
        return self._locks.locked(uuid)

    def _driver_call(self, step: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the driver; anything but a stackcore error becomes a DriverError naming it."""
        return managers.call_driver("compute", self.driver_name, self.host, step, fn, *args,
                                    **kwargs)

    def _load(self, uuid: str) -> tuple[models.Instance, objects.Instance]:
        row, instance, _, _ = self._load_with_requests(uuid, False)
        return row, instance

    def _load_with_requests(self, uuid: str, requests: bool
                            ) -> tuple[models.Instance, objects.Instance, list[dict[str, Any]],
                                       image_cache.CachedSource | None]:
        """The server's row and object (and, with ``requests``, its requested networks), and
        where its image's cached copy comes from (None: a registered local file), in one
        reading transaction."""
        with self.db.read() as session:
            row = session.get(models.Instance, uuid)
            if row is None or row.vm_state == VmState.DELETED:
                raise exception.NotFound("server", uuid)
            image = session.get(image_models.Image, row.image_id)
            wanted = session.get(NetworkRequest, uuid) if requests else None
            network_requests = list(wanted.requests) if wanted is not None else []
        source = None if image is None else image_cache.source_of(
            image.id, image.store, image.location, image.size_bytes, image.sha256,
            image.disk_format)
        return row, self._to_object(row, image), network_requests, source

    def _to_object(self, row: models.Instance,
                   image: image_models.Image | None) -> objects.Instance:
        image_obj = objects.Image(
            id=row.image_id,
            name=image.name if image else "",
            path=self._image_path(image),
            disk_format=image.disk_format if image else "raw",
            properties=dict(image.properties) if image else {},
            location=(image.location or "") if image and image.store else "",
        )
        return objects.Instance(
            uuid=row.uuid,
            name=row.name,
            host=self.host,
            flavor=objects.Flavor(**row.flavor),
            image=image_obj,
            metadata=dict(row.metadata_),
        )

    def _image_path(self, image: image_models.Image | None) -> str:
        """The file a server of ``image`` boots from on this host: the image cache's copy of an
        uploaded image (whatever its store), the file of a registered one."""
        if image is None:
            return ""
        if image.store is not None and image.location is not None:
            return self.image_cache.path(image.id)
        return image.path

    def images_in_use(self) -> set[str]:
        """Ids of the images servers on this host (not deleted) were built from: their disks
        may back onto the cached files, which cleaning keeps."""
        with self.db.read() as session:
            return set(session.execute(sa.select(models.Instance.image_id).where(
                models.Instance.host == self.host,
                models.Instance.vm_state != VmState.DELETED).distinct()).scalars())

    @contextlib.contextmanager
    def _cached_image(self, source: image_cache.CachedSource | None) -> Iterator[None]:
        """The server's image in this host's cache (fetched once, checked) and kept there
        while the block runs; nothing to do for a registered local file."""
        if source is None:
            yield
            return
        with self.image_cache.use(source):
            yield

    def _source_to_fetch(self, source: image_cache.CachedSource | None,
                         image: objects.Image) -> image_cache.CachedSource | None:
        """``source``, unless the driver makes this image's disk without the cached file (it
        clones from the store): nothing to fetch then."""
        if source is None or self._driver_call("needs_image_file",
                                                self.driver.needs_image_file, image):
            return source
        return None

    def _update(self, uuid: str, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(
                sa.update(models.Instance).where(models.Instance.uuid == uuid).values(**values)
            )

    def _fail(self, uuid: str, step: str, err: BaseException, *, release: bool) -> None:
        """Record a fault, move to ERROR, clear the task; optionally give back the claim."""
        LOG.warning("server %s: %s failed on %s: %s", uuid, step, self.host, err)
        with self.db.transaction() as session:
            session.add(faults.new(models.InstanceFault, err, step=step, instance_uuid=uuid,
                                   host=self.host))
            session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == uuid)
                .values(vm_state=VmState.ERROR, task_state=None)
            )
            if release:
                claims.release(session, uuid)

    def _record_fault(self, uuid: str, step: str, err: BaseException | str,
                      exc_class: str | None = None) -> None:
        """Add a fault to the server without changing its state."""
        with self.db.transaction() as session:
            session.add(faults.new(models.InstanceFault, err, step=step, exc_class=exc_class,
                                   instance_uuid=uuid, host=self.host))

    def _cleanup_half_made(
        self,
        instance: objects.Instance,
        network_info: list[dict[str, Any]] | None = None,
        block_device_info: list[dict[str, Any]] | None = None,
    ) -> None:
        try:
            self._driver_call("destroy", self.driver.destroy, instance, network_info or [],
                              block_device_info or [], True)
        except Exception as err:  # noqa: BLE001 - recorded, the original failure stays the story
            self._record_fault(instance.uuid, "cleanup",
                               f"cleanup after failure also failed: {err}", type(err).__name__)

    def _notify(self, event_type: str, uuid: str, err: BaseException | None = None,
                step: str = "") -> None:
        """Emit ``event_type`` with the server's state as the database has it now; with
        ``err``, as an error event."""
        def build() -> dict[str, Any]:
            with self.db.read() as session:
                return notifications.fields("instance", session.get(models.Instance, uuid))
        if err is None:
            self.notifier.info(event_type, build)
        else:
            self.notifier.error(event_type, build, err, step)

    def _power_state(self, instance: objects.Instance) -> objects.PowerState:
        return self._driver_call("get_info", self.driver.get_info, instance).power_state

    # --- service hooks ---------------------------------------------------------------------

    def init_host(self) -> None:
        """Start-up reconciliation, before the host is offered to the scheduler.

        * servers left BUILDING -> ERROR (fault: interrupted), claim released, half-made
          backend instance destroyed, its ports released and its boot volumes' exports ended
          (they stay reserved for the server, as after any failed build);
        * servers left DELETING -> the delete is finished;
        * other interrupted tasks -> cleared, state re-read from the driver;
        * a volume attach interrupted (mapping ``attaching``) -> undone: detached from the
          instance, export ended, mapping removed, fault recorded; a volume detach interrupted
          (``detaching``) -> finished;
        * servers the database places here but the driver does not know -> ERROR;
        * instances the driver has but the database does not know -> recorded in
          :attr:`unknown_instances` and logged (never destroyed: they may not be ours).
        """
        self._driver_call("init_host", self.driver.init_host, self.host)
        try:  # servers evacuated while this host was down: their old instances go first
            self.evacuations.clean_up_evacuated()
        except Exception as err:  # noqa: BLE001 - the periodic pass tries again
            LOG.warning("removing the instances evacuated from %s failed: %s", self.host, err)
        on_backend = set(self._driver_call("list_instances", self.driver.list_instances))
        with self.db.transaction() as session:
            rows = session.execute(
                sa.select(models.Instance).where(
                    models.Instance.host == self.host,
                    models.Instance.vm_state != VmState.DELETED,
                )
            ).scalars().all()
            known = ({row.uuid for row in rows} | self.migrations.migrating_here()
                     | self.evacuations.here() | self.live_migrations.here())
        cause = f"a restart of {BINARY} on {self.host}"
        for row in rows:
            if row.task_state in _MOVE_TASKS:
                continue  # the migration's or evacuation's owner repairs it (below)
            try:
                self._reconcile(row, row.uuid in on_backend, cause)
            except Exception as err:  # noqa: BLE001 - one server never stops the start-up
                LOG.warning("reconciling server %s on %s failed: %s", row.uuid, self.host, err)
        try:
            self.migrations.reconcile_at_start()
        except Exception as err:  # noqa: BLE001 - the periodic repair tries again
            LOG.warning("repairing the migrations of %s failed: %s", self.host, err)
        try:
            self.evacuations.reconcile_at_start()
        except Exception as err:  # noqa: BLE001 - the periodic repair tries again
            LOG.warning("repairing the evacuations to %s failed: %s", self.host, err)
        try:
            self.live_migrations.reconcile_at_start()
        except Exception as err:  # noqa: BLE001 - the periodic repair tries again
            LOG.warning("repairing the live migrations of %s failed: %s", self.host, err)
        self.unknown_instances = sorted(on_backend - known)
        if self.unknown_instances:
            LOG.warning(
                "host %s: the hypervisor has instances the database does not know: %s",
                self.host,
                ", ".join(self.unknown_instances),
            )
        self.update_available_resource()

    def _reconcile(self, row: models.Instance, on_backend: bool, cause: str) -> None:
        """Finish or undo what ``cause`` interrupted on one server (see :meth:`init_host`).
        A failure of a step is recorded on the server (or raised, for the next pass)."""
        _, instance = self._load(row.uuid)
        if row.task_state == TaskState.DELETING:
            self._terminate(instance)
        elif row.vm_state == VmState.BUILDING:
            # Clean up first: whoever sees ERROR sees nothing left on the backends.
            self._cleanup_half_made(instance, self._network_info(row.uuid),
                                    self._block_device_info(row.uuid))
            self._release_build_resources(row.uuid)
            self._fail(row.uuid, "build",
                       exception.DriverError(f"build interrupted by {cause}"), release=True)
        elif not on_backend:
            if row.vm_state != VmState.ERROR:
                self._fail(
                    row.uuid,
                    "init_host",
                    exception.NotFound("instance", row.uuid,
                                       f"server {row.uuid} is missing on the hypervisor of "
                                       f"{self.host}"),
                    release=False,
                )
            # e.g. a delete that destroyed the instance and was cut off while it ended the
            # volumes' attachments: nothing to detach on the hypervisor, the rest to finish
            self._finish_interrupted_volume_steps(instance, cause, on_backend=False)
        else:
            if row.task_state == TaskState.IMAGE_SNAPSHOT:
                self._reconcile_snapshot(instance, cause)
            values: dict[str, Any] = {"task_state": None}
            try:
                info = self._driver_call("get_info", self.driver.get_info, instance)
                power = info.power_state
                values["power_state"] = int(power)
                # a driver may report a suspended instance as shut down (its contract
                # allows it): a suspended server stays SUSPENDED
                suspended = (row.vm_state == VmState.SUSPENDED
                             and power == objects.PowerState.SHUTDOWN)
                if row.vm_state not in (VmState.ERROR, VmState.RESIZED) and not suspended:
                    values["vm_state"] = _POWER_TO_VM.get(power, row.vm_state)
                    if info.rescued and power == objects.PowerState.RUNNING:
                        values["vm_state"] = VmState.RESCUED
            except exception.StackcoreError as err:
                LOG.warning("cannot read state of %s: %s", row.uuid, err)
            self._update(row.uuid, **values)
            self._finish_interrupted_volume_steps(instance, cause)

    def reconcile_orphans(self) -> list[str]:
        """Periodic: finish or undo what was left transient on this host with no work of this
        service on it - a build request lost with a broker restart, an operation a database or
        backend outage cut off, a call to another service that timed out half-way. A server
        (BUILDING, a task set, or a volume mapping attaching/detaching) is an orphan once it
        has been seen so, in the same state and with no request of this service holding it,
        for ``rpc_call_timeout`` seconds: by then whoever asked for the work has stopped
        waiting, and a request still on its way would have arrived. A build that never
        started is started; anything else is handled as at start-up (:meth:`init_host`).
        Returns the servers it handled."""
        bdm = BlockDeviceMapping
        with self.db.transaction() as session:
            moving = sa.select(bdm.instance_uuid).where(
                bdm.status.in_([BdmStatus.ATTACHING, BdmStatus.DETACHING]))
            rows = session.execute(
                sa.select(models.Instance.uuid, models.Instance.vm_state,
                          models.Instance.task_state)
                .where(models.Instance.host == self.host,
                       models.Instance.vm_state != VmState.DELETED,
                       sa.or_(models.Instance.task_state.is_(None),
                              models.Instance.task_state.not_in(_MOVE_TASKS)),
                       sa.or_(models.Instance.vm_state == VmState.BUILDING,
                              models.Instance.task_state.is_not(None),
                              models.Instance.uuid.in_(moving)))
            ).all()
        transient = {r.uuid: (r.vm_state, r.task_state) for r in rows}
        due = self._orphans.due(transient, self._locks.busy, self.conf.rpc_call_timeout,
                                time.monotonic())
        for uuid in due:
            try:
                self._reconcile_orphan(uuid)
            except Exception as err:  # noqa: BLE001 - the next pass tries again
                LOG.warning("reconciling orphaned server %s on %s failed: %s", uuid, self.host,
                            err)
        self._destroy_failed_build_leftovers()
        return (due + self.migrations.reconcile_orphans() + self.evacuations.reconcile_orphans()
                + self.live_migrations.reconcile_orphans())

    def _destroy_failed_build_leftovers(self) -> None:
        """A build that failed while the hypervisor could not be reached (its daemon
        restarting) may have left an instance its clean-up could not destroy. A server in
        ERROR that never became ACTIVE owns nothing on the hypervisor: destroy what is there,
        once no request is working on the server."""
        with self.db.transaction() as session:
            failed = set(session.execute(
                sa.select(models.Instance.uuid).where(
                    models.Instance.host == self.host,
                    models.Instance.vm_state == VmState.ERROR,
                    models.Instance.task_state.is_(None),
                    models.Instance.launched_at.is_(None))).scalars())
        if not failed:
            return
        leftovers = failed & set(self._driver_call("list_instances", self.driver.list_instances))
        for uuid in sorted(leftovers):
            if self._locks.busy(uuid):
                continue
            with self._instance_lock(uuid):
                try:
                    row, instance = self._load(uuid)
                except exception.NotFound:
                    continue
                if row.vm_state != VmState.ERROR or row.task_state is not None \
                        or row.launched_at is not None or row.host != self.host:
                    continue
                try:
                    self._driver_call("destroy", self.driver.destroy, instance,
                                      self._network_info(uuid), self._block_device_info(uuid),
                                      True)
                except exception.StackcoreError as err:
                    LOG.warning("server %s: leftover of its failed build not destroyed yet: %s",
                                uuid, err)
                    continue
                # (no fault: the server's story stays why its build failed)
                LOG.warning("server %s: destroyed the instance its failed build left on %s",
                            uuid, self.host)

    def _reconcile_orphan(self, uuid: str) -> None:
        with self._instance_lock(uuid):
            try:
                row, _ = self._load(uuid)
            except exception.NotFound:
                return
            if row.host != self.host:
                return  # rescheduled elsewhere meanwhile
            never_started = (row.vm_state == VmState.BUILDING
                             and row.task_state == TaskState.SCHEDULING)
            if not never_started:
                LOG.warning("server %s on %s: %s (%s) with no work in progress for %d s; "
                            "reconciling", uuid, self.host, row.vm_state, row.task_state,
                            self.conf.rpc_call_timeout)
                on_backend = uuid in self._driver_call("list_instances",
                                                       self.driver.list_instances)
                self._reconcile(row, on_backend,
                                f"an interruption ({row.task_state or row.vm_state} with no "
                                f"work in progress on {self.host} for "
                                f"{self.conf.rpc_call_timeout} s)")
                return
        LOG.warning("server %s: its build request never reached %s; building it now", uuid,
                    self.host)
        self.build_and_run_instance(uuid)

    def periodic_tasks(self) -> None:
        self.update_available_resource()
        self.reconcile_orphans()
        self.clean_image_cache()

    def clean_image_cache(self) -> list[str]:
        """Remove least recently used images no server here uses from this host's image cache
        while it is over ``[image_cache] max_size_mb``; never raises (logged)."""
        try:
            return self.image_cache.clean()
        except Exception:  # the next round tries again
            LOG.exception("cleaning the image cache of %s failed", self.host)
            return []

    def update_available_resource(self) -> dict[str, Any]:
        """Read, validate and store the driver's stats. A bad report marks the host as not
        reporting (the scheduler skips it) and stores the error; it never raises."""
        source = f"compute driver {self.driver_name!r} on {self.host}"
        values: dict[str, Any]
        try:
            report = stats.validate(
                self._driver_call(
                    "get_available_resource", self.driver.get_available_resource
                ),
                source,
            )
            values = {
                "hypervisor_hostname": report["hypervisor_hostname"],
                "hypervisor_type": report["hypervisor_type"],
                "vcpus": report["vcpus"],
                "memory_mb": report["memory_mb"],
                "local_gb": report["local_gb"],
                # the driver and what it can do here: the API refuses an action the host's
                # driver cannot do before it changes anything (cloud.compute reads them)
                "stats": {**report, "unknown_instances": self.unknown_instances,
                          "driver": self.driver_name,
                          "capabilities": effective_capabilities(self.driver)},
                "reporting": True,
                "report_error": None,
                "reported_at": db_models.utcnow(),
            }
        except exception.StackcoreError as err:
            LOG.error("%s", err)
            values = {"reporting": False, "report_error": str(err)}
        with self.db.transaction() as session:
            node = session.execute(
                sa.select(models.ComputeNode).where(models.ComputeNode.host == self.host)
            ).scalar_one_or_none()
            if node is None:
                node = models.ComputeNode(host=self.host)
                session.add(node)
            for key, value in values.items():
                setattr(node, key, value)
        self.notifier.sample("compute.stats", lambda: {
            "host": self.host, "reporting": values["reporting"],
            "report_error": values["report_error"],
            **{k: values["stats"][k] for k in _SAMPLED_STATS if "stats" in values}})
        return values

    # --- RPC methods ------------------------------------------------------------------------

    def build_and_run_instance(self, instance_uuid: str) -> None:
        """Build a scheduled server (cast by the API after the scheduler claimed this host):
        bind its ports here, export its boot volumes to this host, then spawn.

        Any failure destroys what the driver half made, ends the volume exports (the volumes
        stay reserved for the server), releases the ports, and hands the build to an
        alternate host - or puts the server in ERROR with a fault naming the step."""
        with self._instance_lock(instance_uuid):
            try:
                # the requested networks with the row: one reading transaction, not two
                row, instance, requests, source = self._load_with_requests(instance_uuid,
                                                                           True)
            except exception.NotFound:
                return  # deleted while queued; the delete already released the claim
            if row.vm_state != VmState.BUILDING or row.host != self.host \
                    or row.task_state == TaskState.DELETING:
                return  # built, failed or being deleted meanwhile, or rescheduled elsewhere
            self._notify("instance.create.start", instance_uuid)
            network_info: list[dict[str, Any]] = []
            device_info: list[dict[str, Any]] = []
            step = "allocate_network"
            # Every write is inside: a database outage at any point fails the build like a
            # driver error does (the fault names the database), never leaves it BUILDING.
            try:
                self._update(instance_uuid, task_state=TaskState.SPAWNING)
                with self.db.read() as session:  # one read: the build's hot path
                    boot_bdms = [b for b in block_devices.rows(session, instance_uuid)
                                 if b.boot]
                if block_devices.root_volume(boot_bdms) is not None:
                    step = "boot_from_volume"
                    self._capable("boot_from_volume")  # before anything is made here
                    step = "allocate_network"
                network_info = self._allocate_network(instance_uuid, requests, row.project_id)
                step = "block_device_mapping"
                device_info = self._connect_boot_volumes(instance_uuid, boot_bdms)
                step = "fetch_image"
                with self._cached_image(self._source_to_fetch(source, instance.image)):
                    step = "spawn"
                    self._driver_call(
                        "spawn", self.driver.spawn, instance, instance.image, network_info,
                        device_info,
                    )
                power = self._power_state(instance)
                step = "finish_build"
                with self.db.transaction() as session:
                    session.execute(
                        sa.update(models.Instance).where(models.Instance.uuid == instance_uuid)
                        .values(vm_state=VmState.ACTIVE, task_state=None,
                                power_state=int(power), launched_at=db_models.utcnow()))
                    session.execute(
                        sa.update(BlockDeviceMapping)
                        .where(BlockDeviceMapping.instance_uuid == instance_uuid,
                               BlockDeviceMapping.status == BdmStatus.ATTACHING)
                        .values(status=BdmStatus.ATTACHED))
                self._notify("instance.create.end", instance_uuid)
            except Exception as err:  # noqa: BLE001 - every failure is recorded as a fault
                self._cleanup_half_made(instance, network_info, device_info)
                self._release_build_resources(instance_uuid)
                # Handed to an alternate host: that host's build emits its own start; only
                # the build that gives up emits the error.
                if not self._reschedule(instance_uuid, err):
                    self._fail(instance_uuid, step, err, release=True)
                    self._notify("instance.create.error", instance_uuid, err, step)
        self.update_available_resource()

    # --- network and volume wiring ----------------------------------------------------------

    def _require(self, api: T | None, what: str) -> T:
        if api is None:
            raise exception.ConfigError(
                f"server needs {what} but the compute service on {self.host} was started "
                f"without the {what} API")
        return api

    def _allocate_network(self, instance_uuid: str, requests: list[dict[str, Any]],
                          project_id: str | None) -> list[dict[str, Any]]:
        """Bind the server's requested ports on this host; its network_info."""
        if not requests:
            return []
        network = self._require(self.network_api, "networks")
        # the ports belong to (and count in the quota of) the server's project
        return network.allocate_ports_for_instance(instance_uuid, self.host, requests,
                                                   project_id=project_id)

    def _network_info(self, instance_uuid: str) -> list[dict[str, Any]]:
        if self.network_api is None:
            return []
        return self.network_api.network_info_for_instance(instance_uuid)

    def _block_device_info(self, instance_uuid: str) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return block_devices.block_device_info(block_devices.rows(session, instance_uuid))

    def connector(self) -> dict[str, Any]:
        """This host's connector, as volume backends get it."""
        return block_devices.host_connector(self.host, self.conf.compute.my_ip,
                                            self.conf.compute.iscsi_initiator_name)

    def _set_bdm(self, bdm_id: int, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(sa.update(BlockDeviceMapping)
                            .where(BlockDeviceMapping.id == bdm_id).values(**values))

    def _connect_volume(self, instance_uuid: str, bdm_id: int, volume_id: str,
                        device_name: str) -> dict[str, Any]:
        """Export a volume to this host for the server (mapping -> ``attaching``, attachment
        recorded); its connection_info. The volume manager undoes its own part on failure."""
        volume = self._require(self.volume_api, "volumes")
        self._set_bdm(bdm_id, status=BdmStatus.ATTACHING)
        info = dict(volume.attach(volume_id, self.connector(), instance_uuid, device_name))
        self._set_bdm(bdm_id, attachment_id=info.pop("attachment_id", None))
        return info

    def _connect_boot_volumes(self, instance_uuid: str,
                              bdms: list[BlockDeviceMapping]) -> list[dict[str, Any]]:
        """Export the volumes a build attaches to this host (``bdms``: the server's mappings
        with ``boot``); a root volume still being made from its image (create_server made it
        a moment ago) is awaited first."""
        root = block_devices.root_volume(bdms)
        if root is not None:
            block_devices.await_volume(self._require(self.volume_api, "volumes"),
                                       root.volume_id, "root volume")
        infos = {b.volume_id: self._connect_volume(instance_uuid, b.id, b.volume_id,
                                                   b.device_name) for b in bdms}
        return block_devices.block_device_info(bdms, infos)

    def _disconnect_volume(self, instance_uuid: str, bdm: BlockDeviceMapping) -> None:
        """End the volume service's attachment(s) of one mapping: the recorded one, or, for an
        attach interrupted before its id was recorded, any attachment of the volume to this
        server. A volume or attachment already gone counts as done."""
        if bdm.attachment_id is None and bdm.status != BdmStatus.ATTACHING:
            return
        volume = self._require(self.volume_api, "volumes")
        if bdm.attachment_id is not None:
            ids = [bdm.attachment_id]
        else:
            try:
                ids = [a.id for a in volume.get(bdm.volume_id).attachments
                       if a.instance_uuid == instance_uuid]
            except exception.NotFound:
                return  # the volume itself is gone
        for attachment_id in ids:
            try:
                volume.detach_from_server(bdm.volume_id, attachment_id, instance_uuid)
            except exception.NotFound:
                continue  # the attachment already ended, or the volume is gone

    def _release_build_resources(self, instance_uuid: str) -> None:
        """After a failed build: end the boot volumes' exports (mappings back to
        ``reserved``) and release the ports. A failure here is added to the faults."""
        with self.db.transaction() as session:
            bdms = block_devices.rows(session, instance_uuid)
        for bdm in bdms:
            try:
                self._disconnect_volume(instance_uuid, bdm)
                self._set_bdm(bdm.id, status=BdmStatus.RESERVED, attachment_id=None)
            except Exception as err:  # noqa: BLE001 - recorded; the build failure is the story
                self._record_fault(instance_uuid, "cleanup",
                                   f"ending the export of volume {bdm.volume_id} failed: {err}",
                                   type(err).__name__)
        if self.network_api is not None:
            try:
                self.network_api.deallocate_ports_for_instance(instance_uuid)
            except Exception as err:  # noqa: BLE001
                self._record_fault(instance_uuid, "cleanup",
                                   f"releasing the ports failed: {err}", type(err).__name__)

    def _finish_interrupted_volume_steps(self, instance: objects.Instance, cause: str,
                                         on_backend: bool = True) -> None:
        """Undo the attaches and finish the detaches ``cause`` interrupted (``on_backend``
        False: the instance is gone from the hypervisor, only the volume side is left)."""
        with self.db.transaction() as session:
            pending = [b for b in block_devices.rows(session, instance.uuid)
                       if b.status in (BdmStatus.ATTACHING, BdmStatus.DETACHING)]
        for bdm in pending:
            step = "attach_volume" if bdm.status == BdmStatus.ATTACHING else "detach_volume"
            try:
                if on_backend:
                    self._driver_call("detach_volume", self.driver.detach_volume, instance,
                                      {"volume_id": bdm.volume_id}, bdm.device_name)
                self._disconnect_volume(instance.uuid, bdm)
            except Exception as err:  # noqa: BLE001 - left as is for the next restart
                self._record_fault(instance.uuid, step,
                                   f"finishing the interrupted {step} of volume "
                                   f"{bdm.volume_id} failed: {err}", type(err).__name__)
                continue
            with self.db.transaction() as session:
                session.execute(sa.delete(BlockDeviceMapping)
                                .where(BlockDeviceMapping.id == bdm.id))
            if step == "attach_volume":
                self._record_fault(instance.uuid, step, exception.DriverError(
                    f"attaching volume {bdm.volume_id} at {bdm.device_name} was interrupted "
                    f"by {cause}; it was detached again"))

    def _reschedule(self, instance_uuid: str, err: BaseException) -> bool:
        """Ask the scheduler for an alternate host and hand the build over to it. False (the
        caller fails the build) without a transport, when every attempt is used up or when no
        alternate fits; the reason is then added to the fault."""
        if self._transport is None:
            return False
        from stackcore.compute.placement.rpcapi import SchedulerRPCAPI
        from stackcore.compute.rpcapi import ComputeRPCAPI

        try:
            chosen = SchedulerRPCAPI(self._transport).reschedule(
                instance_uuid, self.host, f"{type(err).__name__}: {err}")
        except exception.StackcoreError as sched_err:
            LOG.warning("server %s: reschedule failed: %s", instance_uuid, sched_err)
            return False
        if not chosen.get("host"):
            LOG.info("server %s not rescheduled: %s", instance_uuid, chosen.get("reason"))
            return False
        ComputeRPCAPI(self._transport).build_and_run_instance(chosen["host"], instance_uuid)
        return True

    def terminate_instance(self, instance_uuid: str) -> None:
        """Destroy the server on the backend, release its claim, mark it deleted."""
        with self._instance_lock(instance_uuid):
            try:
                _, instance = self._load(instance_uuid)
            except exception.NotFound:
                return  # already deleted: deletes are idempotent
            self._terminate(instance)
        self.update_available_resource()

    def _terminate(self, instance: objects.Instance) -> None:
        """Destroy on the hypervisor, then end the volumes' exports, then release the ports.
        A failure in any step leaves the server in ERROR (task cleared, claim kept) so the
        delete can be retried; every step is idempotent."""
        step = "destroy"
        try:
            self._update(instance.uuid, task_state=TaskState.DELETING)
            self._notify("instance.delete.start", instance.uuid)
            with self.db.transaction() as session:
                bdms = block_devices.rows(session, instance.uuid)
            self._driver_call("destroy", self.driver.destroy, instance,
                              self._network_info(instance.uuid),
                              block_devices.block_device_info(bdms), True)
            step = "detach_volumes"
            for bdm in bdms:
                self._disconnect_volume(instance.uuid, bdm)
                if bdm.delete_on_termination:  # before its row: a failed delete is retried
                    step = "delete_volumes"
                    block_devices.delete_volume(self._require(self.volume_api, "volumes"),
                                                bdm.volume_id)
                    step = "detach_volumes"
                with self.db.transaction() as session:
                    session.execute(sa.delete(BlockDeviceMapping)
                                    .where(BlockDeviceMapping.id == bdm.id))
            step = "deallocate_network"
            if self.network_api is not None:
                self.network_api.deallocate_ports_for_instance(instance.uuid)
            step = "finish_delete"
            with self.db.transaction() as session:
                claims.release(session, instance.uuid)
                session.execute(sa.delete(NetworkRequest)
                                .where(NetworkRequest.instance_uuid == instance.uuid))
                session.execute(
                    sa.update(models.Instance)
                    .where(models.Instance.uuid == instance.uuid)
                    .values(
                        vm_state=VmState.DELETED,
                        task_state=None,
                        power_state=int(objects.PowerState.NOSTATE),
                        deleted_at=db_models.utcnow(),
                    )
                )
        except Exception as err:
            # The server stays (in ERROR, task cleared) so the delete can be retried; its claim
            # is kept because the backend may still hold the resources.
            self._fail(instance.uuid, step, err, release=False)
            self._notify("instance.delete.error", instance.uuid, err, step)
            raise
        self._notify("instance.delete.end", instance.uuid)

    # --- volumes of a running server (API 1.1) ---------------------------------------------

    _ATTACHABLE = (VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED)

    def attach_volume(self, instance_uuid: str, volume_id: str,
                      mountpoint: str | None = None) -> str:
        """Attach a volume to the server at ``mountpoint`` (or the next free ``/dev/vdX``);
        returns the device name. On failure the volume is detached again (export removed),
        the mapping removed, a fault recorded on the server (which keeps its state) and the
        error raised to the caller."""
        with self._instance_lock(instance_uuid):
            row, instance = self._load(instance_uuid)
            if row.vm_state not in self._ATTACHABLE or row.task_state is not None:
                raise exception.InvalidState(
                    f"cannot attach a volume to server {instance_uuid} while it is "
                    f"{row.vm_state}" + (f" ({row.task_state})" if row.task_state else ""),
                    state=row.vm_state)
            try:
                with self.db.transaction() as session:
                    existing = block_devices.rows(session, instance_uuid)
                    if any(b.volume_id == volume_id for b in existing):
                        raise exception.Conflict(
                            f"volume {volume_id} is already attached to server {instance_uuid}")
                    used = [b.device_name for b in existing]
                    device = mountpoint or block_devices.next_device_name(used)
                    if device in used:
                        raise exception.Conflict(
                            f"{device} is already in use on server {instance_uuid}")
                    bdm = BlockDeviceMapping(instance_uuid=instance_uuid, volume_id=volume_id,
                                             device_name=device, boot=False,
                                             status=BdmStatus.ATTACHING)
                    session.add(bdm)
            except sa.exc.IntegrityError:
                raise exception.Conflict(
                    f"{mountpoint or 'a device'} or volume {volume_id} is already in use on "
                    f"server {instance_uuid}") from None
            step = "attach_volume"
            try:
                info = self._connect_volume(instance_uuid, bdm.id, volume_id, device)
                bdm.attachment_id = self._attachment_of(bdm.id)
                self._driver_call("attach_volume", self.driver.attach_volume, instance, info,
                                  device)
            except Exception as err:
                try:
                    self._disconnect_volume(instance_uuid, bdm)
                except Exception as cleanup_err:  # noqa: BLE001
                    step_err = f"ending the export after a failed attach failed: {cleanup_err}"
                    self._record_fault(instance_uuid, "cleanup", step_err,
                                       type(cleanup_err).__name__)
                    self._set_bdm(bdm.id, status=BdmStatus.ATTACHING)  # init_host retries
                else:
                    with self.db.transaction() as session:
                        session.execute(sa.delete(BlockDeviceMapping)
                                        .where(BlockDeviceMapping.id == bdm.id))
                self._record_fault(instance_uuid, step, err)
                raise
            self._set_bdm(bdm.id, status=BdmStatus.ATTACHED)
            return device

    def _attachment_of(self, bdm_id: int) -> str | None:
        with self.db.transaction() as session:
            row = session.get(BlockDeviceMapping, bdm_id)
            return row.attachment_id if row is not None else None

    def detach_volume(self, instance_uuid: str, volume_id: str) -> None:
        """Detach a volume from the server (hypervisor first, then the export). A failure
        records a fault and raises; the mapping says how far it got (``attached`` if the
        hypervisor still has the disk, ``detaching`` if only the export is left) and calling
        again finishes it."""
        with self._instance_lock(instance_uuid):
            row, instance = self._load(instance_uuid)
            if row.task_state is not None:
                raise exception.InvalidState(
                    f"cannot detach a volume from server {instance_uuid} while it is "
                    f"{row.task_state}", state=row.vm_state)
            with self.db.transaction() as session:
                bdm = session.execute(sa.select(BlockDeviceMapping).where(
                    BlockDeviceMapping.instance_uuid == instance_uuid,
                    BlockDeviceMapping.volume_id == volume_id)).scalar_one_or_none()
                if bdm is None or bdm.status not in (BdmStatus.ATTACHED, BdmStatus.DETACHING):
                    raise exception.NotFound(
                        "volume attachment", volume_id,
                        f"volume {volume_id} is not attached to server {instance_uuid}")
                block_devices.refuse_root_detach(bdm)
                previous = bdm.status
                bdm.status = BdmStatus.DETACHING
            try:
                self._driver_call("detach_volume", self.driver.detach_volume, instance,
                                  {"volume_id": volume_id}, bdm.device_name)
            except Exception as err:
                self._set_bdm(bdm.id, status=previous)
                self._record_fault(instance_uuid, "detach_volume", err)
                raise
            try:
                self._disconnect_volume(instance_uuid, bdm)
            except Exception as err:
                self._record_fault(instance_uuid, "detach_volume", err)
                raise
            with self.db.transaction() as session:
                session.execute(sa.delete(BlockDeviceMapping)
                                .where(BlockDeviceMapping.id == bdm.id))

    def _capable(self, capability: str) -> None:
        """CapabilityNotSupported naming the driver unless it can do ``capability`` here."""
        if capability not in effective_capabilities(self.driver):
            raise exception.CapabilityNotSupported(self.driver_name, capability)

    def _power_action(
        self,
        instance_uuid: str,
        step: str,
        task: TaskState,
        allowed: tuple[VmState, ...],
        call: Callable[[objects.Instance], None],
        capability: str | None = None,
        expect: tuple[objects.PowerState, ...] = (),
        result: VmState | None = None,
    ) -> None:
        """Set ``task``, call the driver, then set the state the driver reports. With
        ``capability``, refused (nothing changed) unless the driver can do it here. With
        ``expect``, a driver that returns without reaching one of those power states failed
        (ERROR + fault, as if it raised); ``result`` is then the vm_state set."""
        with self._instance_lock(instance_uuid):
            row, instance = self._load(instance_uuid)
            if capability is not None:
                self._capable(capability)
            if row.vm_state not in allowed or row.task_state is not None:
                raise exception.InvalidState(
                    f"cannot {step} server {instance_uuid} while it is {row.vm_state}"
                    + (f" ({row.task_state})" if row.task_state else ""),
                    state=row.vm_state,
                )
            self._update(instance_uuid, task_state=task)
            try:
                self._driver_call(step, call, instance)
                power = self._power_state(instance)
                if expect and power not in expect:
                    raise exception.DriverError(
                        f"{step} of server {instance_uuid} returned but the hypervisor says "
                        f"it is {power.name}, not {' or '.join(p.name for p in expect)}",
                        driver=self.driver_name, power_state=power.name)
            except Exception as err:
                self._fail(instance_uuid, step, err, release=False)
                raise
            self._update(
                instance_uuid,
                task_state=None,
                power_state=int(power),
                vm_state=result or _POWER_TO_VM.get(power, VmState.ERROR),
            )

    def reboot_instance(self, instance_uuid: str, reboot_type: str) -> None:
        kind = objects.RebootType(reboot_type)
        task = TaskState.REBOOTING if kind is objects.RebootType.SOFT else TaskState.REBOOTING_HARD
        allowed: tuple[VmState, ...] = (
            VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED
        )
        if kind is objects.RebootType.HARD:
            allowed = (*allowed, VmState.ERROR)  # a hard reboot is the way out of ERROR
        self._power_action(
            instance_uuid, "reboot", task, allowed, lambda i: self.driver.reboot(i, kind)
        )

    def stop_instance(self, instance_uuid: str) -> None:
        self._power_action(
            instance_uuid, "power_off", TaskState.POWERING_OFF, (VmState.ACTIVE, VmState.STOPPED),
            lambda i: self.driver.power_off(i, 0),
        )

    def start_instance(self, instance_uuid: str) -> None:
        self._power_action(
            instance_uuid, "power_on", TaskState.POWERING_ON, (VmState.STOPPED, VmState.ACTIVE),
            self.driver.power_on,
        )

    # --- pause, suspend, console, snapshot (API 1.2) ------------------------------------------

    def pause_instance(self, instance_uuid: str) -> None:
        """ACTIVE -> PAUSED (frozen in memory). Capability ``pause``."""
        self._power_action(instance_uuid, "pause", TaskState.PAUSING, (VmState.ACTIVE,),
                           self.driver.pause, "pause", (objects.PowerState.PAUSED,),
                           VmState.PAUSED)

    def unpause_instance(self, instance_uuid: str) -> None:
        """PAUSED -> ACTIVE. Capability ``pause``."""
        self._power_action(instance_uuid, "unpause", TaskState.UNPAUSING, (VmState.PAUSED,),
                           self.driver.unpause, "pause", (objects.PowerState.RUNNING,),
                           VmState.ACTIVE)

    def suspend_instance(self, instance_uuid: str) -> None:
        """ACTIVE -> SUSPENDED (state saved to disk). Capability ``suspend``."""
        self._power_action(instance_uuid, "suspend", TaskState.SUSPENDING, (VmState.ACTIVE,),
                           self.driver.suspend, "suspend",
                           (objects.PowerState.SUSPENDED, objects.PowerState.SHUTDOWN),
                           VmState.SUSPENDED)

    def resume_instance(self, instance_uuid: str) -> None:
        """SUSPENDED -> ACTIVE. Capability ``suspend``."""
        self._power_action(instance_uuid, "resume", TaskState.RESUMING, (VmState.SUSPENDED,),
                           self.driver.resume, "suspend", (objects.PowerState.RUNNING,),
                           VmState.ACTIVE)

    # --- instance events (API 1.3; Nova's os-server-external-events) ------------------------

    def external_instance_event(self, instance_uuid: str, name: str, tag: str) -> None:
        """Act on an event another family sent about one of this host's servers
        (:mod:`stackcore.rpc.instance_events`). ``volume-extended`` (``tag``: the volume):
        the driver shows the guest the volume's new size, read from the volume service now
        (the event carries none, so a late or repeated event is harmless). A server that is
        gone, not on this host or in a task is left alone (a build or rebuild opens the
        disk at its new size anyway); a driver without ``extend_volume`` or failing records
        a fault on the server, whose state does not change. Never raises: it is a cast."""
        if name != instance_events.VOLUME_EXTENDED:
            LOG.warning("server %s: ignoring unknown instance event %r (%s)", instance_uuid,
                        name, tag)
            return
        try:
            self._volume_extended(instance_uuid, tag)
        except Exception as err:  # noqa: BLE001 - recorded on the server
            LOG.warning("server %s: showing the guest volume %s's new size failed: %s",
                        instance_uuid, tag, err)
            with contextlib.suppress(Exception):
                self._record_fault(instance_uuid, "extend_volume", err)

    def _volume_extended(self, instance_uuid: str, volume_id: str) -> None:
        with self._instance_lock(instance_uuid):
            try:
                row, instance = self._load(instance_uuid)
            except exception.NotFound:
                row = None
            with self.db.read() as session:
                bdm = session.execute(sa.select(BlockDeviceMapping).where(
                    BlockDeviceMapping.instance_uuid == instance_uuid,
                    BlockDeviceMapping.volume_id == volume_id)).scalar_one_or_none()
            if row is None or row.host != self.host or row.task_state is not None \
                    or bdm is None or bdm.status != BdmStatus.ATTACHED:
                LOG.info("server %s: volume-extended for %s ignored (server or mapping not "
                         "settled here)", instance_uuid, volume_id)
                return
            self._capable("extend_volume")
            size_gb = self._require(self.volume_api, "volumes").get(volume_id).size
            self._driver_call("extend_volume", self.driver.extend_volume, instance,
                              bdm.device_name, size_gb * 1024**3)
            LOG.info("server %s: the guest sees volume %s at %s as %d GiB", instance_uuid,
                     volume_id, bdm.device_name, size_gb)

    _CONSOLE_STATES = (VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED)

    def get_console_output(self, instance_uuid: str) -> str:
        """The driver's console log of the server (read-only: a failure changes nothing and
        records no fault, it is raised to the caller). Capability ``console_output``."""
        with self._instance_lock(instance_uuid):
            row, instance = self._load(instance_uuid)
            self._capable("console_output")
            if row.vm_state not in self._CONSOLE_STATES:
                raise exception.InvalidState(
                    f"cannot read the console of server {instance_uuid} while it is "
                    f"{row.vm_state}", state=row.vm_state)
            text: str = self._driver_call("get_console_output", self.driver.get_console_output,
                                          instance)
        if not isinstance(text, str):
            raise exception.DriverError(f"get_console_output of server {instance_uuid} "
                                        f"returned {type(text).__name__}, not text",
                                        driver=self.driver_name)
        return text

    def _snapshot_images(self) -> ImageAPI:
        """``cloud.image`` acting for the framework (the image belongs to whoever asked for
        the snapshot; the manager only fills or removes it)."""
        from stackcore.project.context import admin_context

        return self._require(self.image_api, "images").bind(admin_context())

    def _delete_snapshot_image(self, instance_uuid: str, image_id: str) -> None:
        """Remove a snapshot's image after a failure; a failure here is added to the faults
        (the image is then left ``queued``, never ``active``)."""
        try:
            self._snapshot_images().delete(image_id)
        except exception.NotFound:
            pass
        except Exception as err:  # noqa: BLE001 - recorded; the snapshot failure is the story
            self._record_fault(instance_uuid, "cleanup", f"deleting snapshot image {image_id} "
                               f"after the failure also failed: {err}", type(err).__name__)

    def snapshot_instance(self, instance_uuid: str, image_id: str) -> None:
        """Snapshot the server's root disk into image ``image_id`` (cast by the API, which
        created the ``queued`` image and set task ``image_snapshot``).

        Live when the driver declares ``live_snapshot`` or the server is STOPPED; otherwise
        the server is suspended around the driver's snapshot (powered off when the driver
        has no ``suspend``) and restored before the upload. The file the driver wrote is
        uploaded to the image (which checks its format and becomes ``active``). On any failure
        (as Nova does): the image is deleted, a fault is recorded and the server goes back to
        the state the hypervisor reports (ACTIVE after a restored cold snapshot) with the task
        cleared - ERROR only when it cannot be restored."""
        with self._instance_lock(instance_uuid):
            try:
                row, instance = self._load(instance_uuid)
            except exception.NotFound:
                row = None
            if row is None or row.task_state != TaskState.IMAGE_SNAPSHOT \
                    or row.host != self.host:
                # deleted, or reconciled by a restart meanwhile: nobody will finish it
                self._delete_snapshot_image(instance_uuid, image_id)
                return
            step = "snapshot"
            restore: Callable[[objects.Instance], None] | None = None
            try:
                self._capable("snapshot")
                capabilities = effective_capabilities(self.driver)
                if row.vm_state == VmState.ACTIVE and "live_snapshot" not in capabilities:
                    if "suspend" in capabilities:
                        step = "suspend"
                        self._driver_call(step, self.driver.suspend, instance)
                        restore = self.driver.resume
                    else:
                        step = "power_off"
                        self._driver_call(step, self.driver.power_off, instance,
                                          _COLD_SNAPSHOT_SHUTDOWN)
                        restore = self.driver.power_on
                step = "snapshot"
                workdir = os.path.join(self.conf.state_path, "snapshots") \
                    if self.conf.state_path else None
                if workdir:
                    os.makedirs(workdir, exist_ok=True)
                with tempfile.TemporaryDirectory(prefix=f"{instance_uuid}-",
                                                 dir=workdir) as tmp:
                    path = os.path.join(tmp, "disk")
                    self._driver_call(step, self.driver.snapshot, instance, path)
                    if restore is not None:
                        step = "resume" if restore == self.driver.resume else "power_on"
                        self._driver_call(step, restore, instance)
                        restore = None
                    step = "upload"
                    with open(path, "rb") as data:
                        self._snapshot_images().upload(image_id, data,
                                                       size=os.path.getsize(path))
                power = self._power_state(instance)
            except Exception as err:  # noqa: BLE001 - every failure is recorded as a fault
                self._snapshot_failed(instance, image_id, step, err, restore)
                return
            self._update(instance_uuid, task_state=None, power_state=int(power),
                         vm_state=_POWER_TO_VM.get(power, VmState.ERROR))

    def _snapshot_failed(self, instance: objects.Instance, image_id: str, step: str,
                         err: BaseException,
                         restore: Callable[[objects.Instance], None] | None) -> None:
        uuid = instance.uuid
        LOG.warning("server %s: snapshot into image %s failed at %s: %s", uuid, image_id, step,
                    err)
        self._delete_snapshot_image(uuid, image_id)
        try:
            if restore is not None:  # suspended or stopped for the snapshot: back as it was
                self._driver_call("restore after snapshot", restore, instance)
            power = self._power_state(instance)
        except Exception as restore_err:  # noqa: BLE001
            self._record_fault(uuid, step, err)
            self._fail(uuid, "restore after snapshot", restore_err, release=False)
            return
        # the fault and the state in one transaction: whoever sees the fault sees it settled
        with self.db.transaction() as session:
            session.add(faults.new(models.InstanceFault, err, step=step, instance_uuid=uuid,
                                   host=self.host))
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(task_state=None, power_state=int(power),
                                    vm_state=_POWER_TO_VM.get(power, VmState.ERROR)))

    def _reconcile_snapshot(self, instance: objects.Instance, cause: str) -> None:
        """A snapshot ``cause`` interrupted: its unfinished image is deleted, a server the
        snapshot suspended (only ACTIVE ones are) is resumed, and a fault says so."""
        images = image_models.Image
        with self.db.read() as session:
            rows = session.execute(sa.select(images.id, images.properties).where(
                images.status.in_(("queued", "killed")))).all()
        leftovers = [r.id for r in rows
                     if (r.properties or {}).get("instance_uuid") == instance.uuid
                     and (r.properties or {}).get("image_type") == "snapshot"]
        for image_id in leftovers:
            self._delete_snapshot_image(instance.uuid, image_id)
        with contextlib.suppress(exception.StackcoreError):
            if self._power_state(instance) == objects.PowerState.SUSPENDED \
                    and "suspend" in effective_capabilities(self.driver):
                self._driver_call("resume", self.driver.resume, instance)
        self._record_fault(instance.uuid, "snapshot", exception.DriverError(
            f"snapshot interrupted by {cause}; its image was deleted"
            + (f" ({', '.join(leftovers)})" if leftovers else "")))

    # --- rebuild (API 1.2) -------------------------------------------------------------------

    def rebuild_instance(self, instance_uuid: str) -> None:
        """Rebuild the server from the image its row now names (the API set it, with task
        ``rebuilding``): destroy the instance and its disks on the hypervisor, export its
        volumes afresh (their connection_info is never stored), then spawn from the new image
        with the same ports and volumes. A server that was STOPPED is stopped again. Any
        failure: ERROR with a fault naming the step (the claim is kept: the server still owns
        its ports and volumes; rebuild again or delete)."""
        with self._instance_lock(instance_uuid):
            try:
                row, instance, _, source = self._load_with_requests(instance_uuid, False)
            except exception.NotFound:
                return
            if row.task_state != TaskState.REBUILDING or row.host != self.host:
                return  # deleted or reconciled meanwhile
            was_stopped = row.vm_state == VmState.STOPPED
            step = "destroy"
            try:
                network_info = self._network_info(instance_uuid)
                with self.db.transaction() as session:
                    bdms = [b for b in block_devices.rows(session, instance_uuid)
                            if b.status == BdmStatus.ATTACHED]
                self._driver_call("destroy", self.driver.destroy, instance, network_info,
                                  block_devices.block_device_info(bdms), True)
                step = "block_device_mapping"
                for bdm in bdms:
                    self._disconnect_volume(instance_uuid, bdm)
                root = block_devices.root_volume(bdms)
                if root is not None:  # volume-backed: the image is written over the root
                    step = "reimage"
                    self._reimage_root(root.volume_id, row.image_id)
                    instance = dataclasses.replace(instance, image=dataclasses.replace(
                        instance.image, id="", name="", path="", location=""))
                    source = None
                    step = "block_device_mapping"
                infos = {}
                for bdm in bdms:
                    infos[bdm.volume_id] = self._connect_volume(instance_uuid, bdm.id,
                                                                bdm.volume_id, bdm.device_name)
                    self._set_bdm(bdm.id, status=BdmStatus.ATTACHED)
                device_info = block_devices.block_device_info(bdms, infos)
                step = "fetch_image"
                with self._cached_image(self._source_to_fetch(source, instance.image)):
                    step = "spawn"
                    self._driver_call("spawn", self.driver.spawn, instance, instance.image,
                                      network_info, device_info)
                if was_stopped:
                    step = "power_off"
                    self._driver_call(step, self.driver.power_off, instance, 0)
                power = self._power_state(instance)
            except Exception as err:  # noqa: BLE001 - every failure is recorded as a fault
                self._fail(instance_uuid, step, err, release=False)
                return
            # a volume-backed server shows no image (its root volume holds the new one)
            self._update(instance_uuid, task_state=None, power_state=int(power),
                         vm_state=_POWER_TO_VM.get(power, VmState.ERROR),
                         launched_at=db_models.utcnow(),
                         **({"image_id": ""} if root is not None else {}))
        self.update_available_resource()

    def _reimage_root(self, volume_id: str, image_id: str) -> None:
        """Rebuild of a volume-backed server (Nova's, since Zed): the root volume, detached,
        gets the new image written over its data by its volume service
        (``cloud.volume.reimage``); InvalidState quoting the volume's fault otherwise."""
        volume_api = self._require(self.volume_api, "volumes")
        block_devices.await_volume(volume_api, volume_id, "root volume")
        done = volume_api.reimage(volume_id, image_id)
        if done.status != "available":
            fault = getattr(done, "fault", None)
            raise exception.InvalidState(
                f"root volume {volume_id} ended {done.status} while the image was written "
                "over it" + (f": {fault.message}" if fault is not None else ""),
                state=done.status)

    # --- rescue (API 1.2) ----------------------------------------------------------------------

    def _image_object(self, image_id: str
                      ) -> tuple[objects.Image, image_cache.CachedSource | None]:
        with self.db.read() as session:
            image = session.get(image_models.Image, image_id)
            if image is None:
                raise exception.NotFound("image", image_id)
            source = image_cache.source_of(image.id, image.store, image.location,
                                           image.size_bytes, image.sha256, image.disk_format)
            return objects.Image(id=image.id, name=image.name, path=self._image_path(image),
                                 disk_format=image.disk_format,
                                 properties=dict(image.properties),
                                 location=(image.location or "") if image.store else ""), source

    def rescue_instance(self, instance_uuid: str, image_id: str) -> None:
        """ACTIVE or STOPPED -> RESCUED: booted from image ``image_id``, its own root disk
        the second disk. Capability ``rescue``."""
        rescue_image, source = self._image_object(image_id)

        def rescue(instance: objects.Instance) -> None:
            with self._cached_image(source):
                self.driver.rescue(instance, rescue_image)
            if not self.driver.get_info(instance).rescued:
                raise exception.DriverError(f"rescue of server {instance_uuid} returned but "
                                            "the hypervisor does not report it rescued",
                                            driver=self.driver_name)

        self._power_action(instance_uuid, "rescue", TaskState.RESCUING,
                           (VmState.ACTIVE, VmState.STOPPED), rescue, "rescue",
                           (objects.PowerState.RUNNING,), VmState.RESCUED)

    def unrescue_instance(self, instance_uuid: str) -> None:
        """RESCUED -> ACTIVE, from its own root disk again. Capability ``rescue``."""
        def unrescue(instance: objects.Instance) -> None:
            self.driver.unrescue(instance)
            if self.driver.get_info(instance).rescued:
                raise exception.DriverError(f"unrescue of server {instance_uuid} returned but "
                                            "the hypervisor still reports it rescued",
                                            driver=self.driver_name)

        self._power_action(instance_uuid, "unrescue", TaskState.UNRESCUING, (VmState.RESCUED,),
                           unrescue, "rescue", (objects.PowerState.RUNNING,), VmState.ACTIVE)

    # --- resize and cold migration (API 1.4; stackcore.compute.migration) ------------------

    def resize_instance(self, instance_uuid: str, migration_id: str) -> None:
        self.migrations.resize_instance(instance_uuid, migration_id)

    def finish_resize(self, instance_uuid: str, migration_id: str) -> None:
        self.migrations.finish_resize(instance_uuid, migration_id)

    def confirm_resize(self, instance_uuid: str, migration_id: str) -> None:
        self.migrations.confirm_resize(instance_uuid, migration_id)

    def revert_resize(self, instance_uuid: str, migration_id: str) -> None:
        self.migrations.revert_resize(instance_uuid, migration_id)

    def finish_revert_resize(self, instance_uuid: str, migration_id: str) -> None:
        self.migrations.finish_revert_resize(instance_uuid, migration_id)

    # --- evacuation (API 1.5; stackcore.compute.evacuation) --------------------------------

    def evacuate_instance(self, instance_uuid: str, migration_id: str) -> None:
        self.evacuations.evacuate_instance(instance_uuid, migration_id)

    # --- live migration (API 1.6; stackcore.compute.live_migration) ------------------------

    def live_migrate_instance(self, instance_uuid: str, migration_id: str) -> None:
        self.live_migrations.live_migrate_instance(instance_uuid, migration_id)

    def pre_live_migration(self, instance_uuid: str, migration_id: str,
                           block_migration: bool | None) -> dict[str, Any]:
        return self.live_migrations.pre_live_migration(instance_uuid, migration_id,
                                                       block_migration)

    def rollback_live_migration_at_destination(self, instance_uuid: str,
                                               migration_id: str) -> None:
        self.live_migrations.rollback_live_migration_at_destination(instance_uuid,
                                                                    migration_id)

    def post_live_migration_at_destination(self, instance_uuid: str,
                                           migration_id: str) -> None:
        self.live_migrations.post_live_migration_at_destination(instance_uuid, migration_id)

    def complete_live_migration(self, instance_uuid: str, migration_id: str) -> None:
        self.live_migrations.complete_live_migration(instance_uuid, migration_id)

    def abort_live_migration(self, instance_uuid: str, migration_id: str) -> None:
        self.live_migrations.abort(instance_uuid, migration_id)

    def live_migration_arrived(self, instance_uuid: str, migration_id: str) -> bool:
        return self.live_migrations.arrived(instance_uuid, migration_id)
