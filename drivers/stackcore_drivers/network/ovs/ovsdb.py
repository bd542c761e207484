"""One connection to one host's ovsdb-server through ovsdbapp.

ovsdbapp keeps the IDL connection as a *class* attribute of its API class (the first instance
wins, later ones silently reuse it), so two OVSDBs in one process - two simulated hosts, a
test next to an agent - would talk to the same server. :class:`_OwnConnectionApi` keeps it per
instance. Every write goes through :meth:`Ovsdb.transaction`, which raises on any error
(ovsdbapp only logs them by default).
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any

from stackcore import exception

LOG = logging.getLogger(__name__)

#: The tables the agent reads and writes (registering only these keeps the IDL small).
TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface", "Controller")


@functools.cache
def _ovsdbapp() -> tuple[Any, Any, Any]:
    """ovsdbapp's ``connection``, ``idlutils`` and ``impl_idl`` modules, imported on first use
    (ovsdbapp pulls in python-ovs and eventlet: ~200 ms that loading this driver need not pay).
    """
    with warnings.catch_warnings():
        # python-ovs probes for eventlet when it is installed, which warns that eventlet is
        # deprecated; stackcore does not use eventlet.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        from ovsdbapp.backend.ovs_idl import connection, idlutils
        from ovsdbapp.schema.open_vswitch import impl_idl
    return connection, idlutils, impl_idl


@functools.cache
def _own_connection_api() -> type:
    """The :class:`_OwnConnectionApi` class (built once, on first use: its base is ovsdbapp's)."""
    base: Any = _ovsdbapp()[2].OvsdbIdl

    class _OwnConnectionApi(base):  # type: ignore[misc]
        """ovsdbapp's Open_vSwitch API with the connection held by the instance."""

        @property
        def ovsdb_connection(self) -> Any:
            return self.__dict__.get("_own_connection")

        @ovsdb_connection.setter
        def ovsdb_connection(self, value: Any) -> None:
            self.__dict__["_own_connection"] = value

    _OwnConnectionApi.__qualname__ = "_OwnConnectionApi"
    return _OwnConnectionApi


class Ovsdb:
    """The Open_vSwitch database of one host.

    ``target`` is an OVSDB connection string (``unix:/path/db.sock``, ``tcp:IP:PORT``);
    ``timeout`` bounds each transaction, including waiting for ovs-vswitchd to apply it.
    Raises BackendUnavailable when the server cannot be reached.
    """

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.target = target
        connection, idlutils, _ = _ovsdbapp()
        try:
            helper = idlutils.get_schema_helper(target, "Open_vSwitch")
            for table in TABLES:
                helper.register_table(table)
            idl = connection.OvsdbIdl(target, helper)
            self._connection = connection.Connection(idl=idl, timeout=timeout)
            self.api = _own_connection_api()(self._connection)
        except Exception as err:
            raise exception.BackendUnavailable(
                f"cannot connect to OVSDB at {target}: {err}") from err

    def transaction(self) -> Any:
        """A transaction that raises on failure (``with db.transaction() as txn``)."""
        return self.api.transaction(check_error=True, log_errors=False)

    def execute(self, command: Any) -> Any:
        return command.execute(check_error=True, log_errors=False)

    def close(self) -> None:
        self._connection.stop(timeout=5)
