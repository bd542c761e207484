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

import http.client
import ipaddress
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from stackcore import exception
from stackcore.image.store import CHUNK_SIZE, ChunkReader, ImageStore, check_range

if TYPE_CHECKING:
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


def _guarded_connect(guard: URLGuard, url: str, host: str) -> Any:
    """``socket.create_connection`` for one connection of ``url``: resolve ``host``, check
    every address it resolves to, connect to a checked one (never to a second resolution)."""

    def connect(address: tuple[str, int], timeout: Any = None,
                source_address: Any = None) -> socket.socket:
        port = address[1]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise OSError(f"host {host!r} does not resolve ({err})") from None
        checked = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            guard.check_address(url, host, getattr(ip, "ipv4_mapped", None) or ip)
            checked.append(str(info[4][0]))
        failure: OSError | None = None
        for ip_text in checked:
            try:
                return socket.create_connection((ip_text, port), timeout, source_address)
            except OSError as err:
                failure = err
        raise failure or OSError(f"host {host!r} has no address")

    return connect


class _GuardedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, guard: URLGuard) -> None:
        self.guard = guard

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        target = urllib.parse.urljoin(req.full_url, newurl)
        try:
            self.guard.check_url(target)
        except exception.Invalid:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _factory(base: type[http.client.HTTPConnection], guard: URLGuard, req: Any) -> Any:
    proxied = req.has_proxy() or getattr(req, "_tunnel_host", None)

    def build(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = base(host, **kwargs)
        if not proxied:  # through a proxy, the proxy connects (see url_filter)
            # http.client's own seam for how a connection opens its socket (HTTP and HTTPS,
            # TLS wrapped after it, with the host name for SNI and the certificate check);
            # overriding connect() instead would copy its body
            conn._create_connection = _guarded_connect(  # type: ignore[attr-defined]  # noqa: SLF001
                guard, req.full_url, conn.host)
        return conn

    return build


class _GuardedHTTP(urllib.request.HTTPHandler):
    def __init__(self, guard: URLGuard) -> None:
        super().__init__()
        self.guard = guard

    def http_open(self, req: Any) -> Any:
        return self.do_open(_factory(http.client.HTTPConnection, self.guard, req), req)


class _GuardedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, guard: URLGuard, context: ssl.SSLContext | None) -> None:
        super().__init__(context=context)
        self.guard = guard
        self.ssl_context = context

    def https_open(self, req: Any) -> Any:
        return self.do_open(_factory(http.client.HTTPSConnection, self.guard, req), req,
                            context=self.ssl_context)


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
        self._context: ssl.SSLContext | None = None
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
        self._opener = None if guard is None else urllib.request.build_opener(
            _GuardedHTTP(guard), _GuardedHTTPS(guard, getattr(self, "_context", None)),
            _GuardedRedirects(guard))

    def _url(self, location: str) -> str:
        if not isinstance(location, str):
            raise exception.Invalid("location", "is not an http(s) URL", location)
        parts = urllib.parse.urlsplit(location)
        if parts.scheme not in self.SCHEMES or not parts.hostname:
            raise exception.Invalid("location", "is not an http(s) URL", _redacted(location))
        return location

    def _open(self, location: str, method: str = "GET",
              headers: dict[str, str] | None = None) -> Any:
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

    def get_size(self, location: str) -> int:
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
