"""The compute manager: one per host, the only caller of that host's hypervisor driver.

It owns every state transition of the servers on its host. Each lifecycle step follows the same
pattern: set the task state, call the driver, set the resulting vm/power state and clear the
task state - or, if the driver raised, run :meth:`ComputeManager._fail`, which records a fault,
moves the server to ERROR, clears the task state, gives back the host claim when the server never
became usable, and asks the driver to destroy what it half made. Nothing is left BUILDING or
DELETING after a failure, and :meth:`init_host` repairs what a crash or kill left behind.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception
from stackcore.compute import objects, stats
from stackcore.compute.driver import HypervisorDriver
from stackcore.compute.states import TaskState, VmState
from stackcore.db import api as db_api
from stackcore.db import models
from stackcore.rpc import Target, Transport
from stackcore.scheduler import claims

LOG = logging.getLogger(__name__)
TOPIC = "compute"
BINARY = "stackcore-compute"
T = TypeVar("T")

_POWER_TO_VM = {
    objects.PowerState.RUNNING: VmState.ACTIVE,
    objects.PowerState.SHUTDOWN: VmState.STOPPED,
    objects.PowerState.PAUSED: VmState.PAUSED,
    objects.PowerState.SUSPENDED: VmState.SUSPENDED,
}


class ComputeManager:
    """RPC endpoint of the compute service on one host (topic ``compute``, server = host).

    API versions: 1.0 build/terminate/reboot/stop/start.
    """

    target = Target(TOPIC, version="1.0")

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        db: db_api.Database,
        host: str,
        driver: HypervisorDriver,
        driver_name: str,
        transport: Transport | None = None,
    ) -> None:
        self.conf = conf
        self.db = db
        self.host = host
        self.driver = driver
        self.driver_name = driver_name
        self.unknown_instances: list[str] = []
        # With a transport, a failed spawn is rescheduled to an alternate host (bounded by
        # [scheduler] max_attempts) before the server is put in ERROR.
        self._transport = transport
        self._locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _instance_lock(self, uuid: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks[uuid]
        with lock:
            yield

    def _driver_call(self, step: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the driver; anything but a stackcore error becomes a DriverError naming it."""
        try:
            return fn(*args, **kwargs)
        except exception.StackcoreError:
            raise
        except Exception as err:
            raise exception.DriverError(
                f"compute driver {self.driver_name!r} failed in {step} on {self.host}: "
                f"{type(err).__name__}: {err}",
                step=step,
            ) from err

    def _load(self, uuid: str) -> tuple[models.Instance, objects.Instance]:
        with self.db.transaction() as session:
            row = session.get(models.Instance, uuid)
            if row is None or row.vm_state == VmState.DELETED:
                raise exception.NotFound("server", uuid)
            image = session.get(models.Image, row.image_id)
        return row, self._to_object(row, image)

    def _to_object(self, row: models.Instance, image: models.Image | None) -> objects.Instance:
        image_obj = objects.Image(
            id=row.image_id,
            name=image.name if image else "",
            path=image.path if image else "",
            disk_format=image.disk_format if image else "raw",
            properties=dict(image.properties) if image else {},
        )
        return objects.Instance(
            uuid=row.uuid,
            name=row.name,
            host=self.host,
            flavor=objects.Flavor(**row.flavor),
            image=image_obj,
            metadata=dict(row.metadata_),
        )

    def _update(self, uuid: str, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(
                sa.update(models.Instance).where(models.Instance.uuid == uuid).values(**values)
            )

    def _fail(self, uuid: str, step: str, err: BaseException, *, release: bool) -> None:
        """Record a fault, move to ERROR, clear the task; optionally give back the claim."""
        LOG.warning("server %s: %s failed on %s: %s", uuid, step, self.host, err)
        with self.db.transaction() as session:
            session.add(
                models.InstanceFault(
                    instance_uuid=uuid,
                    exc_class=type(err).__name__,
                    message=str(err),
                    step=step,
                    host=self.host,
                )
            )
            session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == uuid)
                .values(vm_state=VmState.ERROR, task_state=None)
            )
            if release:
                claims.release(session, uuid)

    def _cleanup_half_made(self, instance: objects.Instance) -> None:
        try:
            self._driver_call("destroy", self.driver.destroy, instance, [], [], True)
        except Exception as err:  # noqa: BLE001 - recorded, the original failure stays the story
            with self.db.transaction() as session:
                session.add(
                    models.InstanceFault(
                        instance_uuid=instance.uuid,
                        exc_class=type(err).__name__,
                        message=f"cleanup after failure also failed: {err}",
                        step="cleanup",
                        host=self.host,
                    )
                )

    def _power_state(self, instance: objects.Instance) -> objects.PowerState:
        return self._driver_call("get_info", self.driver.get_info, instance).power_state

    # --- service hooks ---------------------------------------------------------------------

    def init_host(self) -> None:
        """Start-up reconciliation, before the host is offered to the scheduler.

        * servers left BUILDING -> ERROR (fault: interrupted), claim released, half-made
          backend instance destroyed;
        * servers left DELETING -> the delete is finished;
        * other interrupted tasks -> cleared, state re-read from the driver;
        * servers the database places here but the driver does not know -> ERROR;
        * instances the driver has but the database does not know -> recorded in
          :attr:`unknown_instances` and logged (never destroyed: they may not be ours).
        """
        self._driver_call("init_host", self.driver.init_host, self.host)
        on_backend = set(self._driver_call("list_instances", self.driver.list_instances))
        with self.db.transaction() as session:
            rows = session.execute(
                sa.select(models.Instance).where(
                    models.Instance.host == self.host,
                    models.Instance.vm_state != VmState.DELETED,
                )
            ).scalars().all()
            known = {row.uuid for row in rows}
        for row in rows:
            _, instance = self._load(row.uuid)
            if row.task_state == TaskState.DELETING:
                self._terminate(instance)
            elif row.vm_state == VmState.BUILDING:
                self._fail(
                    row.uuid,
                    "build",
                    exception.DriverError(f"build interrupted by a restart of {BINARY} on "
                                          f"{self.host}"),
                    release=True,
                )
                self._cleanup_half_made(instance)
            elif row.uuid not in on_backend:
                if row.vm_state != VmState.ERROR:
                    self._fail(
                        row.uuid,
                        "init_host",
                        exception.NotFound("instance", row.uuid,
                                           f"server {row.uuid} is missing on the hypervisor of "
                                           f"{self.host}"),
                        release=False,
                    )
            else:
                values: dict[str, Any] = {"task_state": None}
                try:
                    power = self._power_state(instance)
                    values["power_state"] = int(power)
                    if row.vm_state != VmState.ERROR:
                        values["vm_state"] = _POWER_TO_VM.get(power, row.vm_state)
                except exception.StackcoreError as err:
                    LOG.warning("cannot read state of %s: %s", row.uuid, err)
                self._update(row.uuid, **values)
        self.unknown_instances = sorted(on_backend - known)
        if self.unknown_instances:
            LOG.warning(
                "host %s: the hypervisor has instances the database does not know: %s",
                self.host,
                ", ".join(self.unknown_instances),
            )
        self.update_available_resource()

    def periodic_tasks(self) -> None:
        self.update_available_resource()

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
                "stats": {**report, "unknown_instances": self.unknown_instances},
                "reporting": True,
                "report_error": None,
                "reported_at": models.utcnow(),
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
        return values

    # --- RPC methods ------------------------------------------------------------------------

    def build_and_run_instance(self, instance_uuid: str) -> None:
        """Spawn a scheduled server (cast by the API after the scheduler claimed this host)."""
        with self._instance_lock(instance_uuid):
            try:
                row, instance = self._load(instance_uuid)
            except exception.NotFound:
                return  # deleted while queued; the delete already released the claim
            if row.vm_state != VmState.BUILDING:
                return
            self._update(instance_uuid, task_state=TaskState.SPAWNING)
            try:
                self._driver_call(
                    "spawn", self.driver.spawn, instance, instance.image, [], []
                )
                power = self._power_state(instance)
            except Exception as err:  # noqa: BLE001 - every failure is recorded as a fault
                self._cleanup_half_made(instance)
                if not self._reschedule(instance_uuid, err):
                    self._fail(instance_uuid, "spawn", err, release=True)
                self.update_available_resource()
                return
            self._update(
                instance_uuid,
                vm_state=VmState.ACTIVE,
                task_state=None,
                power_state=int(power),
                launched_at=models.utcnow(),
            )
        self.update_available_resource()

    def _reschedule(self, instance_uuid: str, err: BaseException) -> bool:
        """Ask the scheduler for an alternate host and hand the build over to it. False (the
        caller fails the build) without a transport, when every attempt is used up or when no
        alternate fits; the reason is then added to the fault."""
        if self._transport is None:
            return False
        from stackcore.compute.rpcapi import ComputeRPCAPI
        from stackcore.scheduler.rpcapi import SchedulerRPCAPI

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
        self._update(instance.uuid, task_state=TaskState.DELETING)
        try:
            self._driver_call("destroy", self.driver.destroy, instance, [], [], True)
        except Exception as err:
            # The server stays (in ERROR, task cleared) so the delete can be retried; its claim
            # is kept because the backend may still hold the resources.
            self._fail(instance.uuid, "destroy", err, release=False)
            raise
        with self.db.transaction() as session:
            claims.release(session, instance.uuid)
            session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == instance.uuid)
                .values(
                    vm_state=VmState.DELETED,
                    task_state=None,
                    power_state=int(objects.PowerState.NOSTATE),
                    deleted_at=models.utcnow(),
                )
            )

    def _power_action(
        self,
        instance_uuid: str,
        step: str,
        task: TaskState,
        allowed: tuple[VmState, ...],
        call: Callable[[objects.Instance], None],
    ) -> None:
        with self._instance_lock(instance_uuid):
            row, instance = self._load(instance_uuid)
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
            except Exception as err:
                self._fail(instance_uuid, step, err, release=False)
                raise
            self._update(
                instance_uuid,
                task_state=None,
                power_state=int(power),
                vm_state=_POWER_TO_VM.get(power, VmState.ERROR),
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
