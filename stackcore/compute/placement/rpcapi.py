"""Client side of the scheduler RPC API (see :class:`stackcore.compute.placement.manager.
SchedulerManager`). Speaks 1.1: ``explain`` and ``reschedule`` need a 1.1 scheduler,
``select_migration_destination`` a 1.2 one, a 1.3 one for an evacuation, a 1.4 one for
a request naming its host (``requested_host``: an older scheduler would ignore it) and a
1.5 one for a live migration."""

from __future__ import annotations

from typing import Any

from stackcore.rpc import Target, Transport


class SchedulerRPCAPI:
    VERSION = "1.1"

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target("scheduler", version=self.VERSION))

    def select_destinations(self, instance_uuid: str, request: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._client.call(
            "select_destinations", instance_uuid=instance_uuid, request=request)
        return result

    def explain(self, request: dict[str, Any], limit: int | None = 20) -> dict[str, Any]:
        result: dict[str, Any] = self._client.call("explain", request=request, limit=limit)
        return result

    def reschedule(self, instance_uuid: str, failed_host: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._client.call(
            "reschedule", instance_uuid=instance_uuid, failed_host=failed_host, reason=reason)
        return result

    def select_migration_destination(self, instance_uuid: str, migration_id: str,
                                     request: dict[str, Any], evacuation: bool = False,
                                     live: bool = False) -> dict[str, Any]:
        """``evacuation``: the migration is one (an older scheduler refuses the call with
        RPCVersionError rather than the server's task state); ``live`` (a live migration)
        asks for 1.5 likewise; a ``request`` with a ``requested_host`` asks for 1.4 (an
        older one would place it anywhere)."""
        version = ("1.5" if live else "1.4" if request.get("requested_host")
                   else "1.3" if evacuation else "1.2")
        result: dict[str, Any] = self._client.prepare(version=version).call(
            "select_migration_destination", instance_uuid=instance_uuid,
            migration_id=migration_id, request=request)
        return result
