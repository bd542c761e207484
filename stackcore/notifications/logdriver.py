"""The ``log`` driver: each notification as one JSON line on the logger
``oslo.messaging.notification.<event_type>``, in oslo.messaging's message format.

oslo.messaging's own log driver would do the same but drops samples (it logs a notification at
the logger method named by its priority, and loggers have no ``sample``), and needs
oslo.messaging and a transport; this one needs neither. Samples are logged at INFO.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from typing import Any

#: oslo.messaging's logger name, so an operator's logging configuration for it still applies
LOGGER_BASE = "oslo.messaging.notification"
_LEVELS = {"info": logging.INFO, "error": logging.ERROR, "sample": logging.INFO}


class LogNotifier:
    """The subset of ``oslo_messaging.Notifier`` stackcore uses: ``prepare``, ``info``,
    ``error``, ``sample``."""

    def __init__(self, publisher_id: str) -> None:
        self.publisher_id = publisher_id

    def prepare(self, publisher_id: str) -> LogNotifier:
        return LogNotifier(publisher_id)

    def info(self, ctxt: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
        self._log("info", event_type, payload)

    def error(self, ctxt: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
        self._log("error", event_type, payload)

    def sample(self, ctxt: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
        self._log("sample", event_type, payload)

    def _log(self, priority: str, event_type: str, payload: dict[str, Any]) -> None:
        logger = logging.getLogger(f"{LOGGER_BASE}.{event_type}")
        level = _LEVELS[priority]
        if not logger.isEnabledFor(level):
            return
        message = {
            "message_id": str(uuid.uuid4()),
            "publisher_id": self.publisher_id,
            "event_type": event_type,
            "priority": priority.upper(),
            "payload": payload,
            "timestamp": str(datetime.datetime.now(datetime.UTC).replace(tzinfo=None)),
        }
        logger.log(level, "%s", json.dumps(message, default=str))
