"""One libvirt connection per driver: opened lazily, probed before use, reopened with
exponential back-off (tenacity) when the daemon went away; libvirt errors mapped to stackcore's.

Why probe before every use instead of retrying failed calls: a call that fails because the
daemon died half-way may or may not have taken effect, so it is never replayed; it raises
:class:`~stackcore.exception.BackendUnavailable` and the manager records the fault. A connection
found dead *before* a call is simply replaced, so the first call after libvirtd comes back works.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stackcore import exception

if TYPE_CHECKING:
    import libvirt

LOG = logging.getLogger(__name__)

@functools.cache
def _libvirt() -> Any:
    """The libvirt module, imported on first use (its C extension is ~15 ms of start-up that
    loading the driver need not pay), with stackcore's error handler registered."""
    import libvirt

    # libvirt prints every error to stderr unless an error handler is registered; errors reach
    # us as exceptions anyway, so the default printing is only noise (and could echo XML we
    # passed in).
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


@functools.cache
def _error_sets() -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    """(codes meaning "the connection to the daemon is gone / unusable", the error domains of
    such errors, codes meaning "not supported"), built on first use."""
    libvirt = _libvirt()
    connection_codes = frozenset(
        {
            libvirt.VIR_ERR_NO_CONNECT,
            libvirt.VIR_ERR_INVALID_CONN,
            libvirt.VIR_ERR_RPC,
            libvirt.VIR_ERR_SYSTEM_ERROR,
            libvirt.VIR_ERR_INTERNAL_ERROR,
            libvirt.VIR_ERR_AUTH_FAILED,
        }
    )
    connection_domains = frozenset({libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC})
    not_supported = frozenset({libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED})
    return connection_codes, connection_domains, not_supported


def _reason(err: BaseException | None) -> str:
    """Why an attempt to connect failed, for the log and the error."""
    get_message = getattr(err, "get_error_message", None)
    return str(get_message()) if get_message is not None else "no connection object"


def is_connection_error(err: libvirt.libvirtError) -> bool:
    """Whether ``err`` says the daemon connection is broken (rather than the request failed)."""
    import libvirt
    connection_codes, connection_domains, _ = _error_sets()
    return (
        err.get_error_code() in connection_codes
        and err.get_error_domain() in connection_domains
    ) or err.get_error_code() in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN)


class Connection:
    """A libvirt connection to ``uri`` that heals itself between calls.

    Thread-safe: libvirt connections may be shared between threads; only (re)opening is
    serialised.
    """

    def __init__(
        self, uri: str, retries: int, interval: float, max_interval: float
    ) -> None:
        self.uri = uri
        self.retries = retries
        self.interval = interval
        self.max_interval = max_interval
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def is_test_driver(self) -> bool:
        """libvirt's in-process test driver: domains without real disks, devices or secrets."""
        return self.uri.split(":", 1)[0] == "test"

    def get(self) -> Any:
        """An open, answering connection; reopened (with back-off) if the old one died."""
        import libvirt
        with self._lock:
            if self._conn is not None:
                try:
                    # An RPC round trip for remote drivers: proves the daemon still answers.
                    self._conn.getLibVersion()
                    return self._conn
                except libvirt.libvirtError as err:
                    LOG.warning("libvirt connection to %s is dead (%s); reconnecting",
                                self.uri, err.get_error_message())
                    self._conn = None  # dropped, not closed: see _drop
            self._conn = self._open_with_backoff()
            return self._conn

    def _drop(self) -> None:
        """Forget the connection without closing it: other threads may still be in a call on
        it, and closing a libvirt connection frees it under their calls (heap corruption and
        an aborted process, seen when libvirtd was killed during builds). The daemon's end of
        a dead connection is gone anyway; the next :meth:`get` opens a new one."""
        with self._lock:
            self._conn = None

    def reset(self) -> None:
        """Close the connection (no call may be running on it); the next :meth:`get` opens a
        new one."""
        with self._lock:
            self._close_locked()

    def close(self) -> None:
        self.reset()

    def _close_locked(self) -> None:
        import libvirt
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _open_with_backoff(self) -> Any:
        """``libvirt.open`` tried ``retries + 1`` times, ``interval`` seconds after the first
        failure, doubling up to ``max_interval`` (tenacity); BackendUnavailable naming the URI
        and the last reason when every attempt failed."""
        import libvirt
        import tenacity

        _libvirt()  # imported and quietened before the first connection is opened

        def log_failure(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None
            LOG.warning("cannot connect to libvirt at %s (attempt %d of %d): %s",
                        self.uri, state.attempt_number, self.retries + 1,
                        _reason(state.outcome.exception()))

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=tenacity.wait_exponential(multiplier=self.interval, max=self.max_interval),
            # old bindings return None instead of raising
            retry=(tenacity.retry_if_exception_type(libvirt.libvirtError)
                   | tenacity.retry_if_result(lambda conn: conn is None)),
            after=log_failure,
            reraise=True,
        )
        try:
            conn = retrying(libvirt.open, self.uri)
        except (libvirt.libvirtError, tenacity.RetryError) as err:
            raise exception.BackendUnavailable(
                f"cannot connect to libvirt at {self.uri} after {self.retries + 1} "
                f"attempt(s): {_reason(err)}",
                uri=self.uri,
            ) from err
        if retrying.statistics.get("attempt_number", 1) > 1:
            LOG.info("reconnected to libvirt at %s", self.uri)
        return conn

    @contextlib.contextmanager
    def translated(self, action: str, instance_uuid: str | None = None) -> Iterator[None]:
        """Run a block of libvirt calls, raising stackcore exceptions instead of libvirtError.

        * domain unknown -> NotFound(kind ``instance``);
        * connection lost -> BackendUnavailable (and the connection is dropped, so the next call
          reconnects);
        * unsupported by this libvirt driver -> CapabilityNotSupported;
        * operation invalid in the domain's state -> InvalidState;
        * anything else -> DriverError naming the action.
        """
        import libvirt
        try:
            yield
        except libvirt.libvirtError as err:
            raise self.translate(err, action, instance_uuid) from err

    def translate(
        self, err: libvirt.libvirtError, action: str, instance_uuid: str | None = None
    ) -> exception.StackcoreError:
        import libvirt
        code = err.get_error_code()
        message = err.get_error_message() or str(err)
        what = f"{action} of instance {instance_uuid}" if instance_uuid else action
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            return exception.NotFound("instance", instance_uuid or "?",
                                      f"instance {instance_uuid} is not defined in libvirt")
        if is_connection_error(err):
            self._drop()
            return exception.BackendUnavailable(
                f"libvirt at {self.uri} went away during {what}: {message}", uri=self.uri
            )
        if code in _error_sets()[2]:
            return exception.CapabilityNotSupported(f"libvirt ({self.uri})", action)
        if code == libvirt.VIR_ERR_OPERATION_INVALID:
            return exception.InvalidState(f"{what} refused by libvirt: {message}")
        return exception.DriverError(f"libvirt {what} failed: {message}",
                                     libvirt_code=code)
