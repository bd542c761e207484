"""The ``web`` image store: reads images from HTTP(S) URLs, read-only.

Its locations are the URLs themselves (an image registered with a ``https://...`` location).
It adds and deletes nothing (capability ``writable`` False: both raise
``CapabilityNotSupported``) and holds nothing of its own (``locations()`` is empty).

A cloud's image API gives the store its ``[image_import]`` URL filter
(:meth:`WebStore.set_url_guard`, :mod:`stackcore.image.url_filter`): every URL is then checked
before it is fetched, every redirect target too, and each connection is made to an address
the filter checked (not to a second DNS answer). Without one (the conformance kit) any http(s)
URL is read.

Ranged reads ask for ``Range: bytes=offset-end``; a server that ignores it (``200`` with the
whole body) is still read correctly - the bytes before ``offset`` are skipped and the read stops
after ``length`` - only slower. stdlib ``urllib`` only: no extra dependency.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from stackcore import exception
from stackcore.image.store import (
    CHUNK_SIZE,
    WRITE_CHUNK_SIZE,
    ChunkReader,
    ImageStore,
    check_range,
    write_chunks,
)

if TYPE_CHECKING:
    import ssl

    from oslo_config import cfg

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def _redacted(url: str) -> str:
    """``url`` without its user and password (never in a message)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class URLGuard(Protocol):
    """What the store asks before it connects (:class:`stackcore.image.url_filter.URLFilter`):
    both raise ``Invalid`` naming the URL and the rule that refuses it."""

    def check_url(self, url: str) -> Sequence[Any]: ...

    def check_address(self, url: str, host: str, address: Any) -> None: ...


class WebStore(ImageStore):
    """Images read over HTTP(S)."""

    VERSION = "1.0.0"
    SCHEMES = ("http", "https")
    capabilities: ClassVar[dict[str, bool]] = {"writable": False, "discard": False}

    @classmethod
    def get_store_options(cls) -> list[cfg.Opt]:
        from oslo_config import cfg

        return [
            cfg.FloatOpt("timeout", default=30.0, min=0.1,
                         help="Seconds to wait for the server to connect or send data."),
            cfg.StrOpt("ca_file", help="CA bundle for https servers. Unset: the system's."),
            cfg.BoolOpt("insecure", default=False,
                        help="Do not verify https certificates (test servers only)."),
        ]

    def do_setup(self) -> None:
        # http.client, ssl and urllib.request are imported on first use (here only when a
        # certificate setting needs ssl): about 20 ms of every start-up otherwise
        self._context: ssl.SSLContext | None = None
        if self.configuration.insecure or self.configuration.ca_file:
            import ssl
        if self.configuration.insecure:
            self._context = ssl.create_default_context()
            self._context.check_hostname = False  # asked for: a test server's own certificate
            self._context.verify_mode = ssl.CERT_NONE
        elif self.configuration.ca_file:
            try:
                self._context = ssl.create_default_context(cafile=self.configuration.ca_file)
            except (OSError, ssl.SSLError) as err:
                raise exception.ConfigError(
                    f"[{self.group}] ca_file {self.configuration.ca_file!r} cannot be read: "
                    f"{err}") from err

    def set_url_guard(self, guard: URLGuard | None) -> None:
        """Check every URL, redirect and connection with ``guard`` (None: no checks)."""
        self._guard = guard
        self._opener = None
        if guard is not None:
            from stackcore.image.stores._guarded_http import build_opener

            self._opener = build_opener(guard, getattr(self, "_context", None))

    def _url(self, location: str) -> str:
        if not isinstance(location, str):
            raise exception.Invalid("location", "is not an http(s) URL", location)
        parts = urllib.parse.urlsplit(location)
        if parts.scheme not in self.SCHEMES or not parts.hostname:
            raise exception.Invalid("location", "is not an http(s) URL", _redacted(location))
        return location

    def _open(self, location: str, method: str = "GET",
              headers: dict[str, str] | None = None) -> Any:
        import http.client
        import urllib.error
        import urllib.request

        url = self._url(location)
        # the scheme is http(s), checked by _url (never file: or a custom one)
        request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310
        opener = getattr(self, "_opener", None)
        try:
            if opener is not None:
                self._guard.check_url(url)  # type: ignore[union-attr]  # set with the opener
                return opener.open(request, timeout=self.configuration.timeout)
            return urllib.request.urlopen(  # noqa: S310 - http(s) only, see above
                request, timeout=self.configuration.timeout,
                context=getattr(self, "_context", None))
        except urllib.error.HTTPError as err:
            err.close()
            if err.code in (404, 410):
                raise exception.NotFound("image", _redacted(url)) from None
            if err.code == 416:  # range not satisfiable: offset at or past the end
                raise
            raise exception.DriverError(f"{method} {_redacted(url)}: HTTP {err.code} "
                                        f"{err.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise exception.BackendUnavailable(f"{method} {_redacted(url)}: {reason}") from None

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        import urllib.error

        check_range(offset, length)
        if length == 0:
            self.get_size(location)  # NotFound still applies
            return iter(())
        end = "" if length is None else str(offset + length - 1)
        headers = {"Range": f"bytes={offset}-{end}"} if offset or length is not None else {}
        try:
            response = self._open(location, headers=headers)
        except urllib.error.HTTPError:  # 416: nothing from offset on
            return iter(())
        if response.status == 206:
            return ChunkReader(response, length)
        # 200: the server ignored the range - skip to offset ourselves
        skip = offset
        while skip:
            data = response.read(min(skip, CHUNK_SIZE))
            if not data:
                response.close()
                return iter(())
            skip -= len(data)
        return ChunkReader(response, length)

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        """One GET, read into one reused buffer and written from it: no bytes object per
        chunk (the base class's way, through :meth:`get`, made and dropped one per MiB)."""
        with self._open(location) as response:
            view = memoryview(bytearray(WRITE_CHUNK_SIZE))

            def pieces() -> Iterator[memoryview]:
                while count := response.readinto(view):
                    yield view[:count]

            return write_chunks(pieces(), out, on_bytes)

    def get_size(self, location: str) -> int:
        import urllib.error

        with self._open(location, method="HEAD") as response:
            declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit():
            return int(declared)
        # no length on HEAD: ask for the first byte, the total is in Content-Range
        try:
            response = self._open(location, headers={"Range": "bytes=0-0"})
        except urllib.error.HTTPError:  # 416 for the first byte: an empty image
            return 0
        with response:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
            if response.status == 206 and match and match.group(3) != "*":
                return int(match.group(3))
        raise exception.DriverError(f"{_redacted(location)}: the server reports no size "
                                    "(no Content-Length, no Content-Range)")

    def locations(self) -> list[str]:
        return []

    def list_backend_objects(self) -> list[str]:
        return []

    def get_stats(self) -> dict[str, Any]:
        return {
            "driver_version": self.VERSION,
            "writable": False,
            "total_capacity_bytes": None,
            "free_capacity_bytes": None,
            "used_bytes": 0,
            "image_count": 0,
        }
