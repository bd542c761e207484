"""oslo.config types for what stackcore's options mean, so a value is refused at start-up by
the option's own type (with its section and option named) instead of at first use.

* :class:`UniqueList` - a list whose items may not repeat (``[compute] hosts = a, a`` would
  start two services competing for one RPC topic);
* :class:`DatabaseURL` - an SQLAlchemy URL that can serve several connections (no in-memory
  SQLite) with a numeric port; its errors never quote the value (it holds a password);
* :data:`NAME` and :data:`PHYSNET` - the string rules a value must meet to name a backend object.
"""

from __future__ import annotations

from typing import Any

from oslo_config import types


class SafeValueError(ValueError):
    """A ValueError whose message never contains the value: it may be shown for secret
    options (see :func:`stackcore.conf.validate_all`)."""


class UniqueList(types.List):
    """A list option whose items must be distinct."""

    def __call__(self, value: Any) -> list[Any]:
        items: list[Any] = super().__call__(value)
        repeated = sorted({str(i) for i in items if items.count(i) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return items


class DatabaseURL(types.String):
    """An SQLAlchemy database URL usable by several connections and processes."""

    def __init__(self) -> None:
        super().__init__(type_name="database URL")

    def __call__(self, value: Any) -> str:
        text: str = super().__call__(value)
        if not text:
            return text
        import sqlalchemy as sa

        try:
            url = sa.make_url(text)
            _ = url.port  # a non-numeric port raises here
        except (sa.exc.ArgumentError, ValueError):
            raise SafeValueError("is not a valid SQLAlchemy URL (dialect://user:password@"
                                 "host:port/database, the port a number)") from None
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise SafeValueError("is an in-memory SQLite database, which every connection sees "
                                 "empty: give a file (sqlite:////path/stackcore.sqlite) or "
                                 "leave it unset")
        return text


#: a name that becomes (part of) a backend object's name: letters, digits, ``_.-``
NAME = types.String(regex=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", type_name="name")
#: a physical network name (no ``:``: it separates the fields of the options that list them)
PHYSNET = NAME
