"""How the ``web`` store connects when a URL filter guards it: every redirect target checked,
and each connection made to an address the filter checked (never to a second DNS answer).

Apart from :mod:`stackcore.image.stores.web` because ``http.client``, ``ssl`` and
``urllib.request`` cost about 20 ms to import: the store loads them on its first request, not
when a cloud starts or the plugins are verified.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from stackcore import exception

if TYPE_CHECKING:
    from stackcore.image.stores.web import URLGuard


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


def build_opener(guard: URLGuard, context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """An opener whose HTTP(S) connections and redirects ``guard`` checks."""
    return urllib.request.build_opener(_GuardedHTTP(guard), _GuardedHTTPS(guard, context),
                                       _GuardedRedirects(guard))
