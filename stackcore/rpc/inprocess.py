"""In-process transport: direct dispatch, same serializer and envelope as the wire.

``call`` runs the endpoint in the caller's thread. ``cast`` runs it on a small thread pool, as a
remote service would run it concurrently with the caller; a cast's errors are the endpoint's to
record (managers turn them into ERROR states and faults), never silently lost: anything that
still escapes is logged.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any

from stackcore import exception
from stackcore.rpc import base

LOG = logging.getLogger(__name__)


class InProcessTransport(base.Transport):
    def __init__(self, max_workers: int = 16) -> None:
        self._endpoints: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, "stackcore-cast")
        self._closed = False

    def client(self, target: base.Target) -> base.Client:
        return _Client(self, target)

    def serve(self, target: base.Target, endpoint: Any) -> base.Server:
        key = (target.topic, target.server)
        with self._lock:
            if key in self._endpoints:
                where = f"{target.topic}.{target.server}"
                raise exception.RPCError(f"a server already consumes {where}")
            self._endpoints[key] = endpoint
        return _Server(self, key)

    def _lookup(self, target: base.Target) -> Any:
        with self._lock:
            endpoint = self._endpoints.get((target.topic, target.server))
            if endpoint is None and target.server is None:
                # Topic without a server: any consumer of the topic (like a shared queue).
                endpoint = next(
                    (e for (t, _), e in self._endpoints.items() if t == target.topic), None
                )
        if endpoint is None:
            where = target.topic + (f".{target.server}" if target.server else "")
            raise exception.RPCError(f"no service is listening on {where}")
        return endpoint

    def invoke(self, target: base.Target, method: str, kwargs: dict[str, Any]) -> Any:
        payload = base.encode(kwargs)
        endpoint = self._lookup(target)
        return base.unwrap(base.dispatch(endpoint, method, target.version, payload))

    def submit_cast(self, target: base.Target, method: str, kwargs: dict[str, Any]) -> None:
        payload = base.encode(kwargs)
        endpoint = self._lookup(target)
        if self._closed:
            raise exception.RPCError("transport is closed")

        def run() -> None:
            try:
                base.unwrap(base.dispatch(endpoint, method, target.version, payload))
            except Exception:
                LOG.exception("cast %s.%s failed", target.topic, method)

        self._pool.submit(run)

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True)


class _Client(base.Client):
    def __init__(self, transport: InProcessTransport, target: base.Target) -> None:
        super().__init__(target)
        self._transport = transport

    def prepare(self, server: str | None = None, version: str | None = None) -> base.Client:
        target = base.Target(
            self.target.topic, server or self.target.server, version or self.target.version
        )
        return _Client(self._transport, target)

    def call(self, method: str, **kwargs: Any) -> Any:
        return self._transport.invoke(self.target, method, kwargs)

    def cast(self, method: str, **kwargs: Any) -> None:
        self._transport.submit_cast(self.target, method, kwargs)


class _Server(base.Server):
    def __init__(self, transport: InProcessTransport, key: tuple[str, str | None]) -> None:
        self._transport, self._key = transport, key

    def stop(self) -> None:
        with self._transport._lock:  # noqa: SLF001 - the transport's own server handle
            self._transport._endpoints.pop(self._key, None)  # noqa: SLF001
