"""Which URLs an image import may fetch: ``[image_import]``.

``import_from_url`` makes the cloud's own hosts fetch a URL a caller names - without a filter,
a way to reach what only those hosts can (a metadata service at 169.254.169.254, an admin
interface on 127.0.0.1, a database on the private network: server-side request forgery).
The rules are Glance's web-download import filtering (``[import_filtering_opts]``), same
option names and semantics, plus an address rule Glance does not have:

* scheme, host and port each have an allow list and a deny list; a non-empty allow list wins
  (the deny list is then ignored), else the deny list applies. Defaults: schemes ``http``,
  ``https``; ports 80 and 443 (Glance's); any host;
* **address rule** (stackcore's): every address the host resolves to must be globally
  routable - not loopback, private, link-local (the cloud metadata service), shared,
  multicast, reserved or unspecified - unless ``allow_private_addresses`` is set, or the host
  is explicitly trusted: its name, or an address or network (CIDR) holding the address, is in
  ``allowed_hosts``. Names are compared as written (lower case); ``allowed_hosts`` entries
  that are addresses or networks also allow a host by the addresses it resolves to.

Where it is applied: on the URL before anything is fetched (``Invalid`` naming the URL and
the rule, nothing persisted); on every redirect the server answers with (the target URL is
checked again); and on the address each connection is actually made to (the ``web`` store
connects to the address it checked, not to a second resolution: a DNS answer changed between
check and connect - DNS rebinding - cannot slip a private address through). Through an HTTP
proxy (``http_proxy``/``https_proxy`` in the environment) the proxy resolves and connects: the
URL and the addresses are checked here, but the proxy's own rules guard the connection.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stackcore import exception

if TYPE_CHECKING:
    from oslo_config import cfg

GROUP = "image_import"
DEFAULT_PORTS = {"http": 80, "https": 443}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def list_opts() -> list[Any]:
    from oslo_config import cfg, types

    port = types.Integer(min=1, max=65535)
    return [
        cfg.ListOpt("allowed_schemes", default=["http", "https"],
                    help="URL schemes an image import may fetch; non-empty: "
                    "disallowed_schemes is ignored (only http and https can be read)."),
        cfg.ListOpt("disallowed_schemes", default=[],
                    help="URL schemes refused (used only when allowed_schemes is empty)."),
        cfg.ListOpt("allowed_hosts", default=[],
                    help="Hosts an image import may fetch from: names, addresses or networks "
                    "(CIDR); non-empty: only these, and disallowed_hosts is ignored. A host "
                    "listed here may resolve to a private address."),
        cfg.ListOpt("disallowed_hosts", default=[],
                    help="Hosts refused: names, addresses or networks (CIDR) (used only when "
                    "allowed_hosts is empty)."),
        cfg.ListOpt("allowed_ports", item_type=port, default=[80, 443],
                    help="Ports an image import may connect to (a URL without a port: its "
                    "scheme's); non-empty: disallowed_ports is ignored; empty: any port not "
                    "disallowed."),
        cfg.ListOpt("disallowed_ports", item_type=port, default=[],
                    help="Ports refused (used only when allowed_ports is empty)."),
        cfg.BoolOpt("allow_private_addresses", default=False,
                    help="Let an image import fetch from hosts that resolve to addresses that "
                    "are not globally routable (loopback, private, link-local - the metadata "
                    "service -, shared, multicast, reserved). Off: only hosts named in "
                    "allowed_hosts may."),
    ]


def redacted(url: str) -> str:
    """``url`` without its user and password (never in a message)."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return url.rpartition("@")[2] if "@" in url else url
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _address(text: str) -> Address | None:
    try:
        found = ipaddress.ip_address(text.split("%", 1)[0])  # a zone index is not an address
    except ValueError:
        return None
    mapped = getattr(found, "ipv4_mapped", None)
    return mapped if mapped is not None else found


def _kind(address: Address) -> str | None:
    """What makes ``address`` not globally routable, or None when it is."""
    for attribute, kind in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                            ("is_unspecified", "unspecified"), ("is_multicast", "multicast"),
                            ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(address, attribute):
            return kind
    return None if address.is_global else "non-global"


class URLFilter:
    """The ``[image_import]`` rules of one cloud (see the module)."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        opts = conf[GROUP]
        self.allowed_schemes = {s.lower() for s in opts.allowed_schemes}
        self.disallowed_schemes = {s.lower() for s in opts.disallowed_schemes}
        self.allowed_ports = set(opts.allowed_ports)
        self.disallowed_ports = set(opts.disallowed_ports)
        self.allow_private = bool(opts.allow_private_addresses)
        self.allowed_names, self.allowed_networks = self._hosts(
            "allowed_hosts", opts.allowed_hosts)
        self.disallowed_names, self.disallowed_networks = self._hosts(
            "disallowed_hosts", opts.disallowed_hosts)

    @staticmethod
    def _hosts(option: str, entries: Iterable[str]) -> tuple[set[str], list[Any]]:
        names, networks = set(), []
        for entry in entries:
            entry = entry.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry:
                    raise exception.ConfigError(
                        f"[{GROUP}] {option}: {entry!r} is neither a host name nor an "
                        "address or network (CIDR)") from None
                names.add(entry)
        return names, networks

    @staticmethod
    def _refuse(url: str, rule: str, why: str) -> exception.Invalid:
        return exception.Invalid("url", f"{redacted(url)} is refused by [{GROUP}] {rule}: "
                                 f"{why}", redacted(url))

    def _in(self, host: str, names: set[str], networks: list[Any],
            addresses: Iterable[Address] = ()) -> bool:
        literal = _address(host)
        candidates = [literal] if literal is not None else list(addresses)
        return host in names or any(a in n for a in candidates for n in networks
                                    if a.version == n.version)

    def check_url(self, url: str) -> list[Address]:
        """Refuse (``Invalid`` naming the URL and the rule) a URL an import may not fetch;
        return the addresses its host resolves to (all of them allowed)."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise exception.Invalid("url", f"{redacted(url)} is not a valid URL: {err}",
                                    redacted(url)) from None
        scheme = parts.scheme.lower()
        if self.allowed_schemes:
            if scheme not in self.allowed_schemes:
                raise self._refuse(url, "allowed_schemes", f"scheme {scheme!r} is not one of "
                                   f"{', '.join(sorted(self.allowed_schemes))}")
        elif scheme in self.disallowed_schemes:
            raise self._refuse(url, "disallowed_schemes", f"scheme {scheme!r} is disallowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise exception.Invalid("url", f"{redacted(url)} names no host", redacted(url))
        port = port if port is not None else DEFAULT_PORTS.get(scheme)
        if self.allowed_ports:
            if port not in self.allowed_ports:
                raise self._refuse(url, "allowed_ports", f"port {port} is not one of "
                                   f"{', '.join(str(p) for p in sorted(self.allowed_ports))}")
        elif port in self.disallowed_ports:
            raise self._refuse(url, "disallowed_ports", f"port {port} is disallowed")
        addresses = self.resolve(url, host, port or 0)
        for address in addresses:
            self.check_address(url, host, address)
        return addresses

    def resolve(self, url: str, host: str, port: int) -> list[Address]:
        literal = _address(host)
        if literal is not None:
            return [literal]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            raise exception.Invalid("url", f"{redacted(url)}: host {host!r} does not "
                                    f"resolve ({err})", redacted(url)) from None
        found: list[Address] = []
        for info in infos:
            address = _address(str(info[4][0]))
            if address is not None and address not in found:
                found.append(address)
        return found

    def check_address(self, url: str, host: str, address: Address) -> None:
        """Refuse connecting to ``address`` for ``host`` (of ``url``) by the host and address
        rules - at check time and again for the address a connection is made to."""
        if self.allowed_names or self.allowed_networks:
            if not self._in(host, self.allowed_names, self.allowed_networks, [address]):
                raise self._refuse(url, "allowed_hosts", f"host {host} ({address}) is not "
                                   "listed")
        elif self._in(host, self.disallowed_names, self.disallowed_networks, [address]):
            raise self._refuse(url, "disallowed_hosts", f"host {host} ({address}) is "
                               "disallowed")
        kind = _kind(address)
        if kind is None or self.allow_private:
            return
        if self._in(host, self.allowed_names, self.allowed_networks, [address]):
            return  # trusted explicitly by the operator
        article = "an" if kind[0] in "aeiou" else "a"
        raise self._refuse(url, "allow_private_addresses",
                           f"host {host} resolves to {address}, {article} {kind} address "
                           "(list the host in allowed_hosts, or set allow_private_addresses, "
                           "to allow it)")
