"""The RPC interface every manager uses, independent of the transport.

Managers expose endpoint objects (public methods taking keyword arguments of JSON types) with a
``target`` naming their topic and API version; callers use per-manager RPC API classes built on
:class:`Client`. Two transports implement it: in-process (the embedded default) and
oslo.messaging (``rabbit://``). Both carry every payload through :mod:`.serializer` and every
result through the same envelope, so the two behave identically, errors included: a
:class:`~stackcore.exception.StackcoreError` raised by a remote method is raised again, same
class and attributes, in the caller.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

from stackcore import exception
from stackcore.rpc import serializer


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a message goes: a topic, optionally one server (host) on it, and an API version."""

    topic: str
    server: str | None = None
    version: str = "1.0"
    fanout: bool = False


def parse_version(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def version_compatible(served: str, requested: str) -> bool:
    """Same major version, and the server's minor is at least the caller's."""
    s_major, s_minor = parse_version(served)
    r_major, r_minor = parse_version(requested)
    return s_major == r_major and s_minor >= r_minor


#: the envelope key carrying the request context (who asked: user, project, roles, request id)
CONTEXT_KEY = "_context"


def encode(kwargs: dict[str, Any]) -> str:
    """A call's payload: its keyword arguments and the request context the calling thread
    serves (the family API being called sets it), so the request id and project reach the
    service that does the work - in both transports alike."""
    from stackcore.project.context import current

    context = current()
    return serializer.dumps({**kwargs, CONTEXT_KEY: context.wire()} if context is not None
                            else kwargs)


def dispatch(endpoint: Any, method: str, version: str, payload: str) -> str:
    """Run ``method`` on ``endpoint`` and return the serialized reply envelope.

    Shared by both transports' servers: decode the kwargs, check the API version, call, and
    encode ``{"result": ...}`` or ``{"error": ...}``. Nothing raised escapes into the transport.
    """
    try:
        served = endpoint.target.version
        if not version_compatible(served, version):
            raise exception.RPCVersionError(
                f"{type(endpoint).__name__} serves API {served}, caller needs {version}"
            )
        if method.startswith("_") or not callable(getattr(endpoint, method, None)):
            raise exception.RPCError(f"{endpoint.target.topic} has no RPC method {method!r}")
        kwargs = serializer.loads(payload)
        wire = kwargs.pop(CONTEXT_KEY, None)
        from stackcore.project.context import RequestContext, serving

        # current for exactly this call (its log lines name its request and project)
        with serving(RequestContext.from_dict(wire) if wire is not None else None):
            result = getattr(endpoint, method)(**kwargs)
        return serializer.dumps({"result": result})
    except Exception as err:  # noqa: BLE001 - every error travels back to the caller
        return serializer.dumps({"error": exception.to_dict(err)})


def unwrap(reply: str) -> Any:
    """Decode a reply envelope: return the result or raise the remote error locally."""
    envelope = serializer.loads(reply)
    if "error" in envelope:
        raise exception.from_dict(envelope["error"])
    return envelope["result"]


class Client(abc.ABC):
    """Sends calls and casts to one target. ``prepare`` narrows server or version."""

    def __init__(self, target: Target) -> None:
        self.target = target

    @abc.abstractmethod
    def prepare(self, server: str | None = None, version: str | None = None) -> Client:
        """A client for the same topic aimed at ``server`` and/or speaking ``version``."""

    @abc.abstractmethod
    def call(self, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` remotely and wait for its result (or its error)."""

    @abc.abstractmethod
    def cast(self, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` remotely without waiting; the remote side reports its own errors."""


class Server(abc.ABC):
    """A running consumer of one target's messages."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop consuming; returns once in-flight messages are done."""


class Transport(abc.ABC):
    """A way of moving messages between managers."""

    @abc.abstractmethod
    def client(self, target: Target) -> Client: ...

    @abc.abstractmethod
    def serve(self, target: Target, endpoint: Any) -> Server: ...

    @abc.abstractmethod
    def close(self) -> None: ...


ExceptionHook = Callable[[str, BaseException], None]
