"""Input validation for the core API: one clear :class:`~stackcore.exception.Invalid` naming
the argument, raised before anything is written.

Display names (servers, flavors, images) accept any printable text, including ``<>&'"$;``: they
are data, and every driver must escape them where it writes them (XML, command arguments).
Control characters are refused because no backend can show them faithfully. Identifiers that
become backend object names (bridges, volume groups, physical networks) use :func:`identifier`,
which is strict.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from stackcore.exception import Invalid

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def name(field: str, value: Any, max_len: int = 255) -> str:
    """A display name: non-empty text, at most ``max_len`` characters, no control characters."""
    if not isinstance(value, str):
        raise Invalid(field, f"must be a string, not {type(value).__name__}", value)
    if not value.strip():
        raise Invalid(field, "must not be empty", value)
    if len(value) > max_len:
        raise Invalid(field, f"is {len(value)} characters long, the maximum is {max_len}", value)
    if _CONTROL.search(value):
        raise Invalid(field, "contains control characters", value)
    return value


def identifier(field: str, value: Any, max_len: int = 64) -> str:
    """A backend identifier: letters, digits and ``_.:-``, starting with a letter or digit."""
    name(field, value, max_len)
    if not _IDENTIFIER.match(value):
        raise Invalid(field, "may contain only letters, digits and _.:- (starting with a "
                      "letter or digit)", value)
    return str(value)


def integer(field: str, value: Any, minimum: int, maximum: int) -> int:
    """An int (not a bool, not a float) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(field, f"must be an integer, not {type(value).__name__}", value)
    if not minimum <= value <= maximum:
        raise Invalid(field, f"{value} is out of range [{minimum}, {maximum}]", value)
    return value


def string_map(field: str, value: Any, max_items: int = 128) -> dict[str, str]:
    """A mapping of string keys to string values (metadata, extra specs, properties)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Invalid(field, f"must be a mapping, not {type(value).__name__}", value)
    if len(value) > max_items:
        raise Invalid(field, f"has {len(value)} items, the maximum is {max_items}")
    result = {}
    for key, item in value.items():
        name(f"{field} key", key)
        if not isinstance(item, str) or len(item) > 255 or _CONTROL.search(item):
            raise Invalid(f"{field}[{key!r}]", "must be a string of at most 255 printable "
                          "characters", item)
        result[key] = item
    return result


def uuid_like(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(field, f"must be a UUID string, not {type(value).__name__}", value)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Invalid(field, "is not a UUID", value) from None


def choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Invalid(field, f"must be one of {', '.join(allowed)}", value)
    return str(value)
