"""The Notifier a Cloud builds once and hands to its services' managers.

A manager calls :meth:`Notifier.info` / :meth:`Notifier.error` / :meth:`Notifier.sample` with
the event type and a function building the resource's fields. The function runs only when
notifications are on (the embedded default's ``noop`` driver builds nothing), and nothing a
notification does - building, sending - ever fails or delays the operation beyond the bounded
send: a failure is logged and the operation goes on.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from oslo_context import context as oslo_context

from stackcore import logs
from stackcore.notifications import schemas, transport

if TYPE_CHECKING:
    # Annotations only: plugin modules import this package (agents report samples), and
    # importing oslo.config here would make every plugin listing pay for it.
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

Fields = Mapping[str, Any]


class Notifier:
    """Sends versioned notification payloads (:mod:`stackcore.notifications.schemas`) through
    oslo.messaging's Notifier (or :mod:`stackcore.notifications.logdriver`); what
    :meth:`prepare` returns sends as ``<prefix>-<service>:<host>``."""

    def __init__(self, oslo: Any | None = None, oslo_transport: Any | None = None,
                 prefix: str = "stackcore") -> None:
        self._oslo = oslo
        self._transport = oslo_transport
        self._prefix = prefix

    @property
    def enabled(self) -> bool:
        """Whether notifications go anywhere (False with the ``noop`` driver)."""
        return self._oslo is not None

    def prepare(self, service: str, host: str) -> Notifier:
        """The same notifier sending as ``<prefix>-<service>:<host>`` (one per service)."""
        if self._oslo is None:
            return self
        return Notifier(self._oslo.prepare(publisher_id=f"{self._prefix}-{service}:{host}"),
                        None, self._prefix)

    def info(self, event_type: str, build: Callable[[], Fields]) -> None:
        """A lifecycle event (``volume.create.start`` ...)."""
        self._send("info", event_type, build)

    def error(self, event_type: str, build: Callable[[], Fields], err: BaseException | str,
              step: str) -> None:
        """A failed operation (``*.error``), with the fault: exception class, message (secrets
        masked as in the logs), and the step that failed."""
        fault = {"exc_class": type(err).__name__ if isinstance(err, BaseException) else "Error",
                 "message": logs.mask(str(err)), "step": step}
        self._send("error", event_type, build, fault=fault)

    def sample(self, event_type: str, build: Callable[[], Fields]) -> None:
        """A periodic measurement (``compute.stats``, ``volume.stats``)."""
        self._send("sample", event_type, build)

    def _send(self, priority: str, event_type: str, build: Callable[[], Fields],
              **extra: Any) -> None:
        if self._oslo is None:
            return
        try:
            context = _context()
            payload = {"payload_version": schemas.PAYLOAD_VERSION, "event_type": event_type,
                       "context": context, **_jsonable(build()), **extra}
            getattr(self._oslo, priority)(context, event_type, payload)
        except Exception:  # a notification never fails the operation
            LOG.exception("notification %s could not be sent", event_type)

    def close(self) -> None:
        """Release the connection to the broker."""
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None


#: sends nothing; what a manager has until a Cloud gives it its own
NULL = Notifier()


def build(conf: cfg.ConfigOpts) -> Notifier:
    """The Notifier ``[notifications]`` asks for (ConfigError naming the option if it cannot
    be built)."""
    found = transport.oslo_notifier(conf)
    if found is None:
        return NULL
    return Notifier(found[0], found[1], conf.notifications.publisher_id)


#: the payload fields of each kind of resource, read from its database row's attributes
_FIELDS = {
    "instance": tuple(schemas.INSTANCE_FIELDS),
    "volume": tuple(schemas.VOLUME_FIELDS),
    "snapshot": tuple(schemas.SNAPSHOT_FIELDS),
    "attachment": tuple(schemas.ATTACHMENT_FIELDS),
    "backup": tuple(schemas.BACKUP_FIELDS),
}


def fields(kind: str, row: Any) -> dict[str, Any]:
    """The payload fields of a ``kind`` resource (``instance``, ``volume``, ``snapshot``,
    ``attachment``, ``backup``) from its database row: exactly those its schema lists, so a
    secret column (``provider_auth``, a ``connector``, a backup's ``driver_data``) is never
    read into a payload."""
    return {name: getattr(row, name) for name in _FIELDS[kind]}


def _context() -> dict[str, Any]:
    """The request being served (its id, project, user); nulls for a service's own work.
    Never a token or roles: a notification bus has more readers than the API."""
    ctx = oslo_context.get_current()
    return {"request_id": getattr(ctx, "request_id", None),
            "project_id": getattr(ctx, "project_id", None),
            "user_id": getattr(ctx, "user_id", None)}


def _jsonable(values: Fields) -> dict[str, Any]:
    """Datetimes as ISO 8601 UTC strings (the database keeps naive UTC), enums as values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            value = value.isoformat()
        elif isinstance(value, str):
            value = str(value)  # a StrEnum state as its plain value
        elif isinstance(value, Mapping):
            value = _jsonable(value)
        elif isinstance(value, list):
            value = [_jsonable(v) if isinstance(v, Mapping) else v for v in value]
        out[key] = value
    return out
