"""The one wire format: JSON, strictly.

Both transports pass every payload through :func:`dumps`/:func:`loads`, so something that would
not survive the wire (a set, a datetime, an object) fails in the embedded default too, with the
offending path named, instead of only in production over RabbitMQ.
"""

from __future__ import annotations

import json
from typing import Any

from stackcore import exception


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise exception.RPCError(f"RPC payload key at {path} is not a string: {key!r}")
            _check(item, f"{path}.{key}")
        return
    raise exception.RPCError(
        f"RPC payload at {path} is a {type(value).__name__}, which does not survive the wire"
    )


def dumps(value: Any) -> str:
    """Encode ``value``; raise RPCError naming the first non-JSON item."""
    _check(value, "$")
    return json.dumps(value, separators=(",", ":"))


def loads(data: str) -> Any:
    return json.loads(data)
