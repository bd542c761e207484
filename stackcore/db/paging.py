"""Pagination of ``list_*`` queries: ``limit``, ``marker``, ``sort_key``, ``sort_dir``.

Keyset pagination, as OpenStack APIs page: the marker is the id of the last item of the
previous page, and the next page holds the items after it in the sort order (ties broken by
id), so a page costs an index range scan whatever its offset and rows inserted meanwhile
neither repeat nor vanish. The argument schemas are :data:`SCHEMA` (merged into each list
method's schema); an unknown marker is ``NotFound`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stackcore import exception, schemas

T = TypeVar("T")


def schema(sort_keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The schemas of the pagination arguments of a list method sorting by ``sort_keys``."""
    return {
        "limit": schemas.LIMIT,
        "marker": schemas.optional(schemas.string(255)),
        "sort_key": schemas.enum(*sort_keys),
        "sort_dir": schemas.SORT_DIR,
    }


def page_items(items: Sequence[T], id_of: Callable[[T], Any],
               sort_values: Mapping[str, Callable[[T], Any]], *, limit: int | None,
               marker: str | None, sort_key: str, sort_dir: str, resource: str) -> list[T]:
    """The same paging over items already in memory (lists built from several queries)."""
    key = sort_values[sort_key]
    ordered = sorted(items, key=lambda item: (_sortable(key(item)), str(id_of(item))),
                     reverse=sort_dir == "desc")
    if marker is not None:
        ids = [str(id_of(item)) for item in ordered]
        if marker not in ids:
            raise exception.NotFound(f"{resource} (marker)", str(marker))
        ordered = ordered[ids.index(marker) + 1:]
    return ordered if limit is None else ordered[:limit]


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else "")


def page(session: Session, query: sa.Select[Any], id_column: Any,
         sort_columns: Mapping[str, Any], *, limit: int | None, marker: str | int | None,
         sort_key: str, sort_dir: str, resource: str) -> sa.Select[Any]:
    """``query`` ordered by ``sort_key`` (then id), after ``marker``, at most ``limit`` rows."""
    column = sort_columns[sort_key]
    descending = sort_dir == "desc"
    if marker is not None:
        found = session.execute(sa.select(column, id_column).where(id_column == marker)).first()
        if found is None:
            raise exception.NotFound(f"{resource} (marker)", str(marker))
        value, ident = found
        after = sa.tuple_(column, id_column)
        bound = sa.tuple_(sa.literal(value, column.type), sa.literal(ident, id_column.type))
        query = query.where(after < bound if descending else after > bound)
    order = (column.desc(), id_column.desc()) if descending else (column.asc(), id_column.asc())
    query = query.order_by(None).order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    return query
