"""Notifications and telemetry through oslo.messaging's Notifier (doc/source/notifications.rst).

Managers and the network and image APIs emit versioned payloads at every resource lifecycle
point (``instance.create.start``, ``volume.attach.end``, ``port.delete.end``,
``image.activate`` ...) and the services' periodic stats reports as samples
(``compute.stats``, ``volume.stats``, ``agent.stats``, ``segment.stats``);
``[notifications] driver`` chooses where they go
(``noop``, ``log``, ``messaging``). Every payload's JSON schema is in :mod:`.schemas`.
"""

from __future__ import annotations

from stackcore.notifications.notifier import NULL, Notifier, build, fields
from stackcore.notifications.schemas import EVENT_TYPES, PAYLOAD_VERSION, schema, validate

__all__ = ["EVENT_TYPES", "NULL", "PAYLOAD_VERSION", "Notifier", "build", "fields", "schema",
           "validate"]
