"""Client side of the volume RPC API (versioned; see :class:`VolumeManager`)."""

from __future__ import annotations

from typing import Any

from stackcore.rpc import Target, Transport


class VolumeRPCAPI:
    """Calls into the volume service of one backend (``<host>@<backend>``). Speaks 1.0;
    ``copy_volume_to_image`` asks for 1.1, manage/unmanage for 1.2, ``migrate_volume`` and
    ``reimage_volume`` for 1.3
    (an older service refuses them by version instead of failing on an unknown method).

    Long operations that end in a state the caller polls (create volume, create snapshot) are
    casts; everything whose result or error the caller needs at once is a call.
    """

    VERSION = "1.0"

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target("volume", version=self.VERSION))

    def _on(self, host: str) -> Any:
        return self._client.prepare(server=host)

    def create_volume(self, host: str, volume_id: str) -> None:
        self._on(host).cast("create_volume", volume_id=volume_id)

    def delete_volume(self, host: str, volume_id: str) -> None:
        self._on(host).call("delete_volume", volume_id=volume_id)

    def extend_volume(self, host: str, volume_id: str, new_size: int) -> None:
        self._on(host).call("extend_volume", volume_id=volume_id, new_size=new_size)

    def create_snapshot(self, host: str, snapshot_id: str) -> None:
        self._on(host).cast("create_snapshot", snapshot_id=snapshot_id)

    def delete_snapshot(self, host: str, snapshot_id: str) -> None:
        self._on(host).call("delete_snapshot", snapshot_id=snapshot_id)

    def attach_volume(self, host: str, volume_id: str, connector: dict[str, Any],
                      instance_uuid: str | None, mountpoint: str | None) -> dict[str, Any]:
        result: dict[str, Any] = self._on(host).call(
            "attach_volume", volume_id=volume_id, connector=connector,
            instance_uuid=instance_uuid, mountpoint=mountpoint)
        return result

    def detach_volume(self, host: str, volume_id: str, attachment_id: str | None) -> None:
        self._on(host).call("detach_volume", volume_id=volume_id, attachment_id=attachment_id)

    def copy_volume_to_image(self, host: str, volume_id: str, image_id: str,
                             store: str | None) -> dict[str, Any]:
        # 1.1: the image is the caller's, created through cloud.image (a 1.0 service, which
        # made its own image row, refuses the call instead of failing on the arguments)
        result: dict[str, Any] = self._client.prepare(server=host, version="1.1").call(
            "copy_volume_to_image", volume_id=volume_id, image_id=image_id, store=store)
        return result

    # --- manage / unmanage (1.2) -------------------------------------------------------

    def _on_1_2(self, host: str) -> Any:
        return self._client.prepare(server=host, version="1.2")

    def manage_existing_get_size(self, host: str, volume_id: str, pool: str,
                                 existing_ref: dict[str, Any]) -> int:
        size: int = self._on_1_2(host).call("manage_existing_get_size", volume_id=volume_id,
                                            pool=pool, existing_ref=existing_ref)
        return size

    def manage_existing(self, host: str, volume_id: str, existing_ref: dict[str, Any]) -> None:
        self._on_1_2(host).cast("manage_existing", volume_id=volume_id,
                                existing_ref=existing_ref)

    def unmanage_volume(self, host: str, volume_id: str) -> None:
        self._on_1_2(host).call("unmanage_volume", volume_id=volume_id)

    def list_manageable_volumes(self, host: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._on_1_2(host).call("list_manageable_volumes")
        return found

    # --- migration (1.3) -----------------------------------------------------------------

    def migrate_volume(self, host: str, volume_id: str, target_id: str) -> None:
        # 1.3: cast to the volume's own backend, which copies to the target's and switches
        self._client.prepare(server=host, version="1.3").cast(
            "migrate_volume", volume_id=volume_id, target_id=target_id)

    def reimage_volume(self, host: str, volume_id: str, image_id: str) -> None:
        # 1.3 too (added with migrate_volume, in the same release)
        self._client.prepare(server=host, version="1.3").cast(
            "reimage_volume", volume_id=volume_id, image_id=image_id)

    # --- backups (served by volume services with a [backup] backup_driver) --------------

    def create_backup(self, host: str, backup_id: str) -> None:
        self._on(host).cast("create_backup", backup_id=backup_id)

    def restore_backup(self, host: str, backup_id: str, volume_id: str) -> None:
        self._on(host).cast("restore_backup", backup_id=backup_id, volume_id=volume_id)

    def delete_backup(self, host: str, backup_id: str) -> None:
        self._on(host).call("delete_backup", backup_id=backup_id)
