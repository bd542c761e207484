"""Turning the family APIs' view dataclasses into rows for cliff's formatters."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any


def value(item: Any) -> Any:
    """One cell: scalars as they are (json/yaml keep their types), everything else as text
    that reads the same in every formatter."""
    if item is None or isinstance(item, bool | int | float | str):
        return item
    if isinstance(item, datetime.datetime):
        return item.isoformat()
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        if type(item).__str__ is not object.__str__:  # says itself how it reads (Progress)
            return str(item)
        # nested views (a server's flavor, a resource's fault) by what names them
        for attr in ("name", "message", "ip_address"):
            if hasattr(item, attr):
                return str(getattr(item, attr))
        return json.dumps(dataclasses.asdict(item), default=str, sort_keys=True)
    if isinstance(item, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in sorted(item.items()))
    if isinstance(item, Sequence):
        return ", ".join(_text(value(v)) for v in item)
    return str(item)


def _text(item: Any) -> str:
    if isinstance(item, Mapping | list | tuple):
        return json.dumps(item, default=str, sort_keys=True)
    return "" if item is None else str(item)


def fields(view: Any) -> tuple[str, ...]:
    """The field names of a view dataclass, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(view))


def row(view: Any, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(value(getattr(view, column)) for column in columns)


def show(view: Any, extra: Mapping[str, Any] | None = None) -> tuple[tuple[str, ...],
                                                                       tuple[Any, ...]]:
    """``(columns, values)`` of every field of ``view`` (plus ``extra``), for a ShowOne."""
    columns = fields(view) + tuple(extra or ())
    values = row(view, fields(view)) + tuple(value(v) for v in (extra or {}).values())
    return columns, values
