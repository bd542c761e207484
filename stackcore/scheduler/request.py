"""What every placement request shares: JSON in, a frozen object out.

Requests travel over RPC as JSON dicts; each family turns them into a frozen object once per
request (``from_dict``), so no filter parses a dict per candidate. The families' request types
live with their placement (:mod:`stackcore.compute.placement.request`,
:mod:`stackcore.volume.placement.request`); this module holds the field readers they share, so
a bad field is refused the same way everywhere (one :class:`~stackcore.exception.Invalid`
naming it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackcore import _compat, exception


def int_field(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise exception.Invalid(key, "must be an integer >= 0", value)
    return value


def str_map_field(data: Mapping[str, Any], key: str) -> dict[str, str]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise exception.Invalid(key, "must be a mapping", value)
    return {str(k): str(v) for k, v in value.items()}


__getattr__ = _compat.moved_names_getattr(__name__)  # names moved in 0.2 (deprecated)
