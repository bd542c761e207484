"""Steps shared by the moves of a server between hosts (resize and cold migration,
:mod:`stackcore.compute.migration`; evacuation, :mod:`stackcore.compute.evacuation`): the
migration row's hand-overs, and the ports and volume attachments moved to this host.

Both move a server with a :class:`~stackcore.compute.models.Migration` row whose ``status``
says which host owns the next step; these helpers are the pieces both use, kept here rather
than reached into across modules.
"""

# HostMoves is the compute manager's own code: it uses the manager's internals (its database,
# locks, volume and network APIs) as the manager's methods do.
# ruff: noqa: SLF001
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception, managers
from stackcore.compute import block_devices, models, objects
from stackcore.compute.models import BlockDeviceMapping, MigrationStatus
from stackcore.compute.states import TaskState

if TYPE_CHECKING:
    from stackcore.compute.manager import ComputeManager

LOG = logging.getLogger(__name__)


class HostMoves:
    """The shared steps of one compute host's moves (``m``: its :class:`ComputeManager`)."""

    def __init__(self, manager: ComputeManager) -> None:
        self.m = manager

    def repair_orphans(self, orphans: managers.Orphans, owned: list[tuple[str, str, str]],
                       repair: Callable[[str, str, str, str], None], what: str) -> list[str]:
        """The periodic repair of a host's moves: of ``owned`` (``(instance_uuid,
        migration_id, status)``), those left in one status with no work of this host on
        them for ``rpc_call_timeout`` seconds are handed to ``repair(uuid, migration_id,
        status, cause)``; a failing repair is logged and tried again by the next pass.
        Returns the servers repaired."""
        m = self.m
        states = {migration_id: status for _, migration_id, status in owned}
        uuids = {migration_id: uuid for uuid, migration_id, _ in owned}
        due = orphans.due(states, lambda key: m._locks.busy(uuids[key]),
                          m.conf.rpc_call_timeout, time.monotonic())
        for migration_id in due:
            try:
                repair(uuids[migration_id], migration_id, states[migration_id],
                       f"an interruption ({states[migration_id]} with no work in progress "
                       f"on {m.host} for {m.conf.rpc_call_timeout} s)")
            except Exception as err:  # noqa: BLE001 - the next pass tries again
                LOG.warning("repairing %s %s of server %s failed: %s", what, migration_id,
                            uuids[migration_id], err)
        return [uuids[d] for d in due]

    def rpc(self) -> Any:
        from stackcore.compute.rpcapi import ComputeRPCAPI

        if self.m._transport is None:
            raise exception.ConfigError(
                f"the compute service on {self.m.host} has no RPC transport: a migration "
                "or evacuation hands its steps over between hosts")
        return ComputeRPCAPI(self.m._transport)

    def load(self, uuid: str, migration_id: str, status: MigrationStatus, host_field: str
             ) -> tuple[models.Migration, objects.Instance] | None:
        """The migration and the server, if the migration is ``status`` and this host is
        its ``host_field`` (``source_host`` / ``dest_host``); None otherwise (a stale or
        repeated request: someone else owns it now)."""
        with self.m.db.read() as session:
            migration = session.get(models.Migration, migration_id)
            if migration is None or migration.instance_uuid != uuid \
                    or migration.status != status \
                    or getattr(migration, host_field) != self.m.host:
                return None
            session.expunge(migration)
        try:
            _, instance = self.m._load(uuid)
        except exception.NotFound:
            return None
        return migration, instance

    def hand_over(self, migration_id: str, expected: MigrationStatus, status: MigrationStatus,
                  task: TaskState | None, error: str | None = None,
                  **instance_values: Any) -> bool:
        """Move the migration from ``expected`` to ``status`` and the server's task to
        ``task`` in one transaction; False (nothing changed) if it was not ``expected``."""
        with self.m.db.transaction() as session:
            values: dict[str, Any] = {"status": status}
            if error is not None:
                values["error"] = error[:2000]
            moved = session.execute(
                sa.update(models.Migration)
                .where(models.Migration.id == migration_id,
                       models.Migration.status == expected)
                .values(**values)).rowcount  # type: ignore[attr-defined]
            if moved != 1:
                return False
            uuid = session.execute(sa.select(models.Migration.instance_uuid).where(
                models.Migration.id == migration_id)).scalar_one()
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(task_state=task, **instance_values))
        return True

    def bdms(self, uuid: str) -> list[BlockDeviceMapping]:
        with self.m.db.read() as session:
            rows = block_devices.rows(session, uuid)
            for row in rows:
                session.expunge(row)
        return rows

    def connect_volumes_here(self, uuid: str, bdms: list[BlockDeviceMapping]
                             ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """A new attachment of each volume to this host (the volume service allows it while
        the server holds the volume); the connection_infos and the new attachment ids, both
        by volume id. The mappings point at the new attachments."""
        volume = self.m._require(self.m.volume_api, "volumes")
        infos: dict[str, dict[str, Any]] = {}
        created: dict[str, str] = {}
        for bdm in bdms:
            info = dict(volume.attach(bdm.volume_id, self.m.connector(), uuid, bdm.device_name))
            created[bdm.volume_id] = str(info.pop("attachment_id"))
            infos[bdm.volume_id] = info
            self.m._set_bdm(bdm.id, attachment_id=created[bdm.volume_id])
        return infos, created

    def end_attachments(self, uuid: str, volume_id: str, attachment_ids: set[str]) -> None:
        volume = self.m._require(self.m.volume_api, "volumes")
        for attachment_id in sorted(attachment_ids):
            try:
                volume.detach_from_server(volume_id, attachment_id, uuid)
            except exception.NotFound:
                continue  # ended already (a repeated step)

    def ports_here(self, uuid: str) -> list[dict[str, Any]]:
        if self.m.network_api is None:
            return []
        return self.m.network_api.migrate_ports_for_instance(uuid, self.m.host)
