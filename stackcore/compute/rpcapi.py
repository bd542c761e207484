"""Client side of the compute RPC API (versioned; see
:class:`stackcore.compute.manager.ComputeManager`).

The scheduler's client is :mod:`stackcore.compute.placement.rpcapi`."""

from __future__ import annotations

from typing import Any

from stackcore import _compat
from stackcore.rpc import Target, Transport


class ComputeRPCAPI:
    """Calls into the compute service of one host. Speaks compute API 1.0; the volume calls
    need 1.1; pause/unpause, suspend/resume, console output, snapshots, rebuild and rescue
    1.2. API 1.3 adds ``external_instance_event``, which other families cast with
    :func:`stackcore.rpc.instance_events.send` (they may not import compute). API 1.4:
    resize and cold migrate (``resize_instance`` on the source, ``finish_resize`` on the
    destination, ``confirm_resize`` on the source, ``revert_resize`` on the destination,
    ``finish_revert_resize`` on the source), all casts: the server's state says when each
    is done (:mod:`stackcore.compute.migration`). API 1.5: ``evacuate_instance`` on the
    host the scheduler chose for a server of a dead host (a cast:
    :mod:`stackcore.compute.evacuation`). API 1.6: live migration
    (:mod:`stackcore.compute.live_migration`): ``live_migrate_instance`` on the source (a
    cast), which calls ``pre_live_migration`` and, after a failure,
    ``rollback_live_migration_at_destination`` on the destination; then
    ``post_live_migration_at_destination`` (cast) on the destination and
    ``complete_live_migration`` (cast) on the source; ``abort_live_migration`` (a call) on
    the source; ``live_migration_arrived`` (a call) on the destination, for a source
    repairing an interrupted move."""

    VERSION = "1.0"

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target("compute", version=self.VERSION))

    def _on(self, host: str) -> Any:
        return self._client.prepare(server=host)

    def build_and_run_instance(self, host: str, instance_uuid: str) -> None:
        self._on(host).cast("build_and_run_instance", instance_uuid=instance_uuid)

    def terminate_instance(self, host: str, instance_uuid: str) -> None:
        self._on(host).call("terminate_instance", instance_uuid=instance_uuid)

    def reboot_instance(self, host: str, instance_uuid: str, reboot_type: str) -> None:
        self._on(host).call("reboot_instance", instance_uuid=instance_uuid, reboot_type=reboot_type)

    def stop_instance(self, host: str, instance_uuid: str) -> None:
        self._on(host).call("stop_instance", instance_uuid=instance_uuid)

    def start_instance(self, host: str, instance_uuid: str) -> None:
        self._on(host).call("start_instance", instance_uuid=instance_uuid)

    def attach_volume(self, host: str, instance_uuid: str, volume_id: str,
                      mountpoint: str | None) -> str:
        device: str = self._client.prepare(server=host, version="1.1").call(
            "attach_volume", instance_uuid=instance_uuid, volume_id=volume_id,
            mountpoint=mountpoint)
        return device

    def detach_volume(self, host: str, instance_uuid: str, volume_id: str) -> None:
        self._client.prepare(server=host, version="1.1").call(
            "detach_volume", instance_uuid=instance_uuid, volume_id=volume_id)

    def _v12(self, host: str) -> Any:
        return self._client.prepare(server=host, version="1.2")

    def pause_instance(self, host: str, instance_uuid: str) -> None:
        self._v12(host).call("pause_instance", instance_uuid=instance_uuid)

    def unpause_instance(self, host: str, instance_uuid: str) -> None:
        self._v12(host).call("unpause_instance", instance_uuid=instance_uuid)

    def suspend_instance(self, host: str, instance_uuid: str) -> None:
        self._v12(host).call("suspend_instance", instance_uuid=instance_uuid)

    def resume_instance(self, host: str, instance_uuid: str) -> None:
        self._v12(host).call("resume_instance", instance_uuid=instance_uuid)

    def get_console_output(self, host: str, instance_uuid: str) -> str:
        text: str = self._v12(host).call("get_console_output", instance_uuid=instance_uuid)
        return text

    def snapshot_instance(self, host: str, instance_uuid: str, image_id: str) -> None:
        """Cast: a snapshot takes as long as its disk; the image says when it is done."""
        self._v12(host).cast("snapshot_instance", instance_uuid=instance_uuid,
                             image_id=image_id)

    def rebuild_instance(self, host: str, instance_uuid: str) -> None:
        """Cast: a rebuild fetches an image and spawns; the server says when it is done."""
        self._v12(host).cast("rebuild_instance", instance_uuid=instance_uuid)

    def rescue_instance(self, host: str, instance_uuid: str, image_id: str) -> None:
        self._v12(host).call("rescue_instance", instance_uuid=instance_uuid, image_id=image_id)

    def unrescue_instance(self, host: str, instance_uuid: str) -> None:
        self._v12(host).call("unrescue_instance", instance_uuid=instance_uuid)


    def _v14(self, host: str) -> Any:
        return self._client.prepare(server=host, version="1.4")

    def resize_instance(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v14(host).cast("resize_instance", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def finish_resize(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v14(host).cast("finish_resize", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def confirm_resize(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v14(host).cast("confirm_resize", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def revert_resize(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v14(host).cast("revert_resize", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def finish_revert_resize(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v14(host).cast("finish_revert_resize", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def evacuate_instance(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._client.prepare(server=host, version="1.5").cast(
            "evacuate_instance", instance_uuid=instance_uuid, migration_id=migration_id)

    def _v16(self, host: str) -> Any:
        return self._client.prepare(server=host, version="1.6")

    def live_migrate_instance(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v16(host).cast("live_migrate_instance", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def pre_live_migration(self, host: str, instance_uuid: str, migration_id: str,
                           block_migration: bool | None) -> dict[str, Any]:
        data: dict[str, Any] = self._v16(host).call(
            "pre_live_migration", instance_uuid=instance_uuid, migration_id=migration_id,
            block_migration=block_migration)
        return data

    def rollback_live_migration_at_destination(self, host: str, instance_uuid: str,
                                               migration_id: str) -> None:
        self._v16(host).call("rollback_live_migration_at_destination",
                             instance_uuid=instance_uuid, migration_id=migration_id)

    def post_live_migration_at_destination(self, host: str, instance_uuid: str,
                                           migration_id: str) -> None:
        self._v16(host).cast("post_live_migration_at_destination",
                             instance_uuid=instance_uuid, migration_id=migration_id)

    def complete_live_migration(self, host: str, instance_uuid: str,
                                migration_id: str) -> None:
        self._v16(host).cast("complete_live_migration", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def abort_live_migration(self, host: str, instance_uuid: str, migration_id: str) -> None:
        self._v16(host).call("abort_live_migration", instance_uuid=instance_uuid,
                             migration_id=migration_id)

    def live_migration_arrived(self, host: str, instance_uuid: str,
                               migration_id: str) -> bool:
        return bool(self._v16(host).call("live_migration_arrived",
                                         instance_uuid=instance_uuid,
                                         migration_id=migration_id))


__getattr__ = _compat.moved_names_getattr(__name__)  # names moved in 0.2 (deprecated)
