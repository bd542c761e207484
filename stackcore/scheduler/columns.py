"""Columnar candidate sets: the whole-set machinery every family's host or pool set is built on.

A family's candidate set (compute's ``HostSet``, volume's ``PoolSet``) keeps each numeric field
as a numpy column and each structured field (zone, capabilities, aggregate metadata) as a
*code column*: an integer per candidate indexing a table of the distinct values. A whole-set
filter then evaluates its check once per distinct value and broadcasts the answer
(:func:`stackcore.scheduler.filters.base.by_code`), touching no Python object per candidate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import IntArray

T = TypeVar("T")


def json_key(value: Any) -> str:
    """A canonical text of a JSON-like value: equal values, equal keys."""
    return json.dumps(value, sort_keys=True, default=str)


def encode(values: Sequence[T], key: Callable[[T], Any] = lambda v: v) -> tuple[IntArray, list[T]]:
    """``(codes, table)``: ``table`` holds the distinct values of ``values`` (distinct by
    ``key``) in first-seen order and ``codes[i]`` is the index of ``values[i]`` in it."""
    import numpy as np

    index: dict[Any, int] = {}
    table: list[T] = []
    codes = np.empty(len(values), np.int64)
    for i, value in enumerate(values):
        k = key(value)
        found = index.get(k)
        if found is None:
            found = index[k] = len(table)
            table.append(value)
        codes[i] = found
    return codes, table
