"""The typed exception hierarchy of stackcore.

Every error stackcore raises on purpose is a :class:`StackcoreError`. Callers catch the family
they care about (``NotFound``, ``Invalid``, ``Conflict`` ...) and read structured attributes
rather than parsing messages. The classes are plain (no positional-argument magic) so that they
survive the RPC serializer unchanged: :func:`to_dict` / :func:`from_dict` are what both RPC
transports use to carry an error across a call.
"""

from __future__ import annotations

from typing import Any


class StackcoreError(Exception):
    """Base of every stackcore error.

    ``message`` is the full human sentence; extra keyword arguments become attributes and are
    carried across RPC in ``kwargs``.
    """

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.kwargs = kwargs
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


# --- Caller errors -------------------------------------------------------------------------


class NotFound(StackcoreError):
    """A named resource does not exist. ``kind`` and ``ident`` say which."""

    def __init__(self, kind: str, ident: str, message: str | None = None) -> None:
        super().__init__(message or f"{kind} {ident!r} not found", kind=kind, ident=ident)


class Invalid(StackcoreError):
    """An argument or value is not acceptable. ``field`` names the culprit."""

    def __init__(self, field: str, reason: str, value: Any = None) -> None:
        super().__init__(f"invalid {field}: {reason}", field=field, reason=reason, value=value)


class Conflict(StackcoreError):
    """The request clashes with the current state (duplicate name, resource in use...)."""


class InvalidState(Conflict):
    """An action is not allowed in the resource's current state."""


class NoValidHost(StackcoreError):
    """The scheduler found no host (or pool) for a request.

    ``reasons`` is a list of plain sentences, one per filter that rejected hosts, e.g.
    ``"RamFilter rejected 3 hosts: needs 4096 MB, the best had 2048 MB free"``.
    """

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        reasons = list(reasons or [])
        full = message if not reasons else message + ": " + "; ".join(reasons)
        super().__init__(full, reasons=reasons)


class QuotaExceeded(Conflict):
    """A resource pool (VLAN IDs, IP addresses, capacity) has nothing left."""


class OverQuota(QuotaExceeded):
    """A project asked for more of a resource than its quota allows; nothing was created."""

    def __init__(self, project_id: str, resource: str, requested: int, used: int,
                 limit: int) -> None:
        super().__init__(
            f"quota exceeded for {resource} of project {project_id}: requested {requested}, "
            f"{used} in use, limit {limit}",
            project_id=project_id, resource=resource, requested=requested, used=used,
            limit=limit)


class Forbidden(StackcoreError):
    """The request's context may not do this: names the policy rule that said no."""

    def __init__(self, rule: str, message: str | None = None) -> None:
        super().__init__(message or f"policy does not allow {rule}", rule=rule)


# --- Configuration and plugins -------------------------------------------------------------


class ConfigError(StackcoreError):
    """A configuration value is missing or wrong; names section, option and value."""


class PluginError(StackcoreError):
    """A plugin could not be found, loaded or called. Names namespace, entry point, distribution."""


class PluginNotFound(PluginError):
    """No entry point of that name is installed in the namespace."""


class PluginLoadError(PluginError):
    """Importing an entry point failed, or two distributions registered the same name."""


class DriverContractError(PluginError):
    """A plugin class does not meet its family contract. ``problems`` lists every defect."""

    problems: list[str]

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        problems = list(problems or [])
        full = message if not problems else message + ":\n  - " + "\n  - ".join(problems)
        super().__init__(full, problems=problems)


class PluginUnavailable(PluginError):
    """A plugin meets its contract but cannot run here: a backend library it needs is not
    installed. ``missing`` maps each missing module to how to install it."""

    missing: dict[str, str]

    def __init__(self, message: str, missing: dict[str, str] | None = None) -> None:
        missing = dict(missing or {})
        super().__init__(message, missing=missing)


# --- Drivers and backends ------------------------------------------------------------------


class DriverError(StackcoreError):
    """A driver failed while doing its job. The managers turn this into ERROR + a fault."""


class CapabilityNotSupported(DriverError):
    """The driver does not declare the optional capability an action needs."""

    def __init__(self, driver: str, capability: str) -> None:
        super().__init__(
            f"driver {driver!r} does not support {capability!r}",
            driver=driver,
            capability=capability,
        )


class StatsSchemaError(DriverError):
    """A driver's stats report broke the family's stats schema. ``field`` names the culprit."""


class BackendUnavailable(DriverError):
    """The backend could not be reached (connection refused, timed out, daemon gone)."""


# --- RPC -----------------------------------------------------------------------------------


class RPCError(StackcoreError):
    """A remote call could not be delivered or answered."""


class RPCVersionError(RPCError):
    """The caller asked for an RPC API version the server does not speak."""


class OperationTimeout(RPCError):
    """A waited-for resource did not settle in time (its manager may still be working)."""


class RemoteError(RPCError):
    """A remote method raised something that is not a stackcore error.

    ``exc_type`` is the remote class name; the message keeps the remote text.
    """


# --- Wire form -----------------------------------------------------------------------------


def to_dict(exc: BaseException) -> dict[str, Any]:
    """Serialise an exception for an RPC reply (class name, message, structured kwargs).

    A subclass defined elsewhere (a family's or a store's own, e.g. the image stores'
    ``SizeLimitExceeded``) goes as its nearest base class of this module - the caller may not
    have it, but catches its base (``Invalid``) with the same message and attributes."""
    if isinstance(exc, StackcoreError):
        known = next(c for c in type(exc).__mro__ if globals().get(c.__name__) is c)
        return {"class": known.__name__, "message": exc.message, "kwargs": exc.kwargs}
    return {"class": type(exc).__name__, "message": str(exc), "kwargs": {}}


def from_dict(data: dict[str, Any]) -> StackcoreError:
    """Rebuild the exception :func:`to_dict` produced; non-stackcore ones become RemoteError."""
    cls = globals().get(data["class"])
    message = data["message"]
    if isinstance(cls, type) and issubclass(cls, StackcoreError):
        exc = cls.__new__(cls)
        StackcoreError.__init__(exc, message, **data.get("kwargs", {}))
        return exc
    return RemoteError(f"{data['class']}: {message}", exc_type=data["class"])
