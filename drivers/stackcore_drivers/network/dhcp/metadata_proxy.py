"""Metadata for guests on networks without a router: a proxy in each ``qdhcp-`` namespace.

A guest asks ``http://169.254.169.254/...`` (cloud-init, ``openstack/latest/meta_data.json``).
The compute metadata service answers only requests carrying Nova's headers ``X-Instance-ID``
(the server), ``X-Tenant-ID`` (its project) and ``X-Instance-ID-Signature`` (hex
HMAC-SHA256 of the instance id keyed with the secret shared with it), so something trusted must
say which server asks. As Neutron's isolated metadata does, that is the DHCP agent:

1. the agent puts ``169.254.169.254/32`` on the network's DHCP port device and hands every
   served subnet a classless static route to it via the DHCP port's address (the agent adds
   it to the subnets' routes, :func:`with_metadata_route`);
2. a small proxy process (:func:`main`, one per network, started by :class:`ProxyManager` in
   the namespace: daemonised with a pid file like dnsmasq, left running when the agent stops,
   adopted when it starts again, restarted when a pass finds it dead, stopped with the
   network's DHCP) listens on ``169.254.169.254:80`` and forwards each request over the
   agent's UNIX socket (``[dhcp] metadata_proxy_socket``), with the network id and the
   guest's source address - which the guest cannot forge: its own ``X-Forwarded-For`` and
   identity headers are dropped;
3. the agent (:class:`MetadataService`) finds the port holding that address on that network
   (DHCP RPC ``get_port_by_address``): its ``device_id`` is the server, its project the
   tenant. It signs, forwards to ``[dhcp] metadata_url`` and relays the answer (status,
   headers, body). An address no server's port holds gets 404.

Identity comes only from the port: every ``X-Instance-ID*`` / ``X-Tenant-ID`` header the guest
sent is removed before anything else is added. The secret and the signatures are never
logged.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import http.server
import ipaddress
import logging
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackcore import exception
from stackcore.network.agents import unblock_stop_signals
from stackcore.network.dhcp import DhcpNetwork, DhcpPort, DhcpSubnet

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

METADATA_ADDRESS = "169.254.169.254"
METADATA_CIDR = f"{METADATA_ADDRESS}/32"
METADATA_PORT = 80
#: proxy -> agent: the network the request came in on (the source address says the rest)
NETWORK_HEADER = "X-Stackcore-Network-ID"
FORWARDED_HEADER = "X-Forwarded-For"
#: Nova's identity headers (prefixes: ``X-Instance-ID-Signature`` too); a guest's are dropped
IDENTITY_PREFIXES = ("x-instance-id", "x-tenant-id")
#: never relayed either way: they describe one connection, not the message
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                        "te", "trailer", "upgrade", "proxy-authorization",
                        "proxy-authenticate", "host", "content-length"})
#: bytes of a request body forwarded (Nova's password POST is 255 bytes)
MAX_BODY = 64 * 1024
#: seconds a forwarded request may take (proxy -> agent -> compute metadata service)
TIMEOUT = 30.0
#: sun_path is 108 bytes, its terminating NUL included
_SOCKET_PATH_MAX = 107
_NETWORK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def sign(secret: str, instance_id: str) -> str:
    """Nova's ``X-Instance-ID-Signature``: hex HMAC-SHA256 of ``instance_id``."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def check_conf(conf: cfg.ConfigOpts) -> None:
    """Refuse a metadata configuration that cannot work (ConfigError naming the option)."""
    if not conf.dhcp.enable_isolated_metadata:
        return
    if not conf.dhcp.metadata_proxy_shared_secret:
        raise exception.ConfigError(
            "[dhcp] enable_isolated_metadata is on but [dhcp] metadata_proxy_shared_secret "
            "is empty: set the secret shared with the compute metadata service, or set "
            "enable_isolated_metadata = false")
    url = urllib.parse.urlsplit(conf.dhcp.metadata_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise exception.ConfigError(
            f"[dhcp] metadata_url {conf.dhcp.metadata_url!r} is not an http(s) URL with a host")


def forwarded_headers(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()
                      ) -> list[tuple[str, str]]:
    """``headers`` without Nova's identity headers, the hop-by-hop ones and ``drop``."""
    dropped = HOP_BY_HOP | {name.lower() for name in drop}
    return [(name, value) for name, value in headers
            if name.lower() not in dropped and not name.lower().startswith(IDENTITY_PREFIXES)]


def with_metadata_route(network: DhcpNetwork, port: DhcpPort) -> DhcpNetwork:
    """``network`` whose IPv4 DHCP subnets route ``169.254.169.254/32`` via ``port``'s
    address on them (as host routes, so DHCP options 121/249 carry it with the default
    route). Every served subnet gets it (Neutron's ``force_metadata``): there is no
    router-side metadata path."""
    addresses = dict(port.fixed_ips)
    subnets = []
    for subnet in network.subnets:
        hop = addresses.get(subnet.id)
        if (subnet.enable_dhcp and subnet.ip_version == 4 and hop is not None
                and all(dest != METADATA_CIDR for dest, _ in subnet.host_routes)):
            subnet = DhcpSubnet(subnet.id, subnet.cidr, subnet.ip_version, subnet.gateway_ip,
                                subnet.enable_dhcp, subnet.dns_nameservers,
                                (*subnet.host_routes, (METADATA_CIDR, hop)))
        subnets.append(subnet)
    return DhcpNetwork(network.id, network.mtu, tuple(subnets), network.ports)


def _relay(handler: http.server.BaseHTTPRequestHandler, response: http.client.HTTPResponse
           ) -> None:
    body = response.read()
    handler.send_response(response.status, response.reason)
    for name, value in forwarded_headers(response.getheaders()):
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _error(handler: http.server.BaseHTTPRequestHandler, status: int, text: str) -> None:
    body = (text + "\n").encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class _BadBody(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _body(handler: http.server.BaseHTTPRequestHandler) -> bytes | None:
    """The request's body (at most :data:`MAX_BODY` bytes: metadata requests are small, a
    guest's huge one is refused before it is read)."""
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        raise _BadBody(400, "invalid Content-Length") from None
    if length < 0:
        raise _BadBody(400, "invalid Content-Length")
    if length > MAX_BODY:
        raise _BadBody(413, f"request body over {MAX_BODY} bytes")
    return handler.rfile.read(length) if length > 0 else None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the agent's UNIX socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


# --- the agent's side ------------------------------------------------------------------------

#: ``(network_id, ip_address)`` -> the port (``device_id``, ``project_id``...) or None
PortLookup = Callable[[str, str], "dict[str, Any] | None"]


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetadataService:
    """The agent's end of the proxies: an HTTP server on the UNIX socket ``path`` that
    identifies the guest from its port, signs and forwards to ``url``."""

    def __init__(self, path: str, url: str, secret: str, lookup: PortLookup) -> None:
        self.path = path
        self.url = urllib.parse.urlsplit(url)
        self._secret = secret
        self.lookup = lookup
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if len(os.fsencode(self.path)) > _SOCKET_PATH_MAX:
            raise exception.ConfigError(
                f"[dhcp] metadata_proxy_socket {self.path!r} is longer than the "
                f"{_SOCKET_PATH_MAX} bytes of a UNIX socket's path: set a shorter one")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.path).unlink(missing_ok=True)   # left by an agent that stopped
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.handle(self)

            do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("metadata: " + format, *args)

        self._server = _UnixHTTPServer(self.path, Handler)
        os.chmod(self.path, 0o600)   # only root (the proxies) may claim to be a guest
        # polls for shutdown every 0.1 s: the agent's stop has seconds, not half-seconds
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        daemon=True, name="metadata service")
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        Path(self.path).unlink(missing_ok=True)

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self.url.hostname or "", self.url.port
        if self.url.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=TIMEOUT)
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT)

    def handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        network_id = handler.headers.get(NETWORK_HEADER, "")
        address = handler.headers.get(FORWARDED_HEADER, "")
        try:
            ipaddress.ip_address(address)
            valid = bool(_NETWORK_ID.match(network_id))
        except ValueError:
            valid = False
        if not valid:
            _error(handler, 400, "request did not come through a metadata proxy")
            return
        try:
            port = self.lookup(network_id, address)
        except Exception as err:  # noqa: BLE001 - the server may be down: the guest retries
            LOG.warning("metadata request from %s on network %s: port lookup failed: %s",
                        address, network_id, err)
            _error(handler, 503, "metadata temporarily unavailable")
            return
        if (port is None or not port.get("device_id")
                or str(port.get("device_owner", "")).startswith("network:")):
            LOG.info("metadata request from %s on network %s: no server's port has that "
                     "address", address, network_id)
            _error(handler, 404, "no server has this address")
            return
        instance_id, project_id = str(port["device_id"]), str(port.get("project_id") or "")
        headers = forwarded_headers(handler.headers.items(), drop=(NETWORK_HEADER,))
        headers += [("X-Instance-ID", instance_id), ("X-Tenant-ID", project_id),
                    ("X-Instance-ID-Signature", sign(self._secret, instance_id))]
        path = self.url.path.rstrip("/") + handler.path
        try:
            body = _body(handler)
        except _BadBody as err:
            _error(handler, err.status, str(err))
            return
        conn = self._connection()
        try:
            conn.request(handler.command, path, body=body, headers=dict(headers))
            response = conn.getresponse()
            LOG.debug("metadata %s %s for server %s (port %s): %s", handler.command,
                      handler.path, instance_id, port.get("id"), response.status)
            _relay(handler, response)
        except OSError as err:
            LOG.warning("metadata request of server %s: %s unreachable: %s", instance_id,
                        self.url.geturl(), err)
            _error(handler, 502, "the metadata service did not answer")
        finally:
            conn.close()


# --- the proxy processes (managed by the agent) ----------------------------------------------

class ProxyManager:
    """The proxy processes of one agent, under ``<root>/<network_id>/`` (``pid``,
    ``proxy.log``). A pid counts only if that process's command line names this network's
    pid file (a reused pid is never signalled)."""

    def __init__(self, root: str, socket_path: str, start_timeout: float = 10.0) -> None:
        self.root = Path(root)
        self.socket_path = socket_path
        self.start_timeout = start_timeout
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, network_id: str) -> Path:
        if not _NETWORK_ID.match(network_id):
            raise exception.Invalid("network_id", "must be a lowercase UUID", network_id)
        return self.root / network_id

    def pid(self, network_id: str) -> int | None:
        path = self._dir(network_id) / "pid"
        try:
            pid = int(path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if f"--pid-file={path}".encode() in cmdline else None

    def active_networks(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir() and _NETWORK_ID.match(p.name)}

    def ensure(self, network_id: str, namespace: str) -> int:
        """The network's proxy runs in ``namespace`` (started when it does not): its pid."""
        pid = self.pid(network_id)
        if pid is not None:
            return pid
        path = self._dir(network_id)
        path.mkdir(exist_ok=True)
        (path / "pid").unlink(missing_ok=True)
        argv = ["ip", "netns", "exec", namespace, sys.executable, "-m", __name__,
                f"--network-id={network_id}", f"--socket={self.socket_path}",
                f"--pid-file={path / 'pid'}"]
        with open(path / "proxy.log", "a") as log:
            # the agent's threads block the stop signals and the mask is inherited
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    timeout=self.start_timeout, check=False,
                                    preexec_fn=unblock_stop_signals)
        pid = self.pid(network_id)
        if result.returncode != 0 or pid is None:
            raise exception.DriverError(
                f"the metadata proxy of network {network_id} did not start (exit "
                f"{result.returncode}): {(path / 'proxy.log').read_text().strip()[-500:]}")
        LOG.info("metadata proxy for network %s started (pid %s)", network_id, pid)
        return pid

    def stop(self, network_id: str) -> None:
        """Stop the network's proxy and remove its files (idempotent)."""
        path = self._dir(network_id)
        if not path.exists():
            return
        pid = self.pid(network_id)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.start_timeout
            while self.pid(network_id) == pid:
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.01)
            LOG.info("metadata proxy for network %s stopped (pid %s)", network_id, pid)
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


# --- the proxy process itself ----------------------------------------------------------------

def make_proxy(network_id: str, socket_path: str, address: str = METADATA_ADDRESS,
               port: int = METADATA_PORT) -> http.server.ThreadingHTTPServer:
    """The proxy's HTTP server, bound (not serving yet)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/"):
                _error(self, 400, "only paths are accepted")
                return
            headers = forwarded_headers(self.headers.items(),
                                        drop=(NETWORK_HEADER, FORWARDED_HEADER))
            headers += [(NETWORK_HEADER, network_id),
                        (FORWARDED_HEADER, str(self.client_address[0]))]
            try:
                body = _body(self)
            except _BadBody as err:
                _error(self, err.status, str(err))
                return
            conn = _UnixConnection(socket_path, TIMEOUT)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(headers))
                _relay(self, conn.getresponse())
            except OSError as err:
                LOG.warning("metadata agent at %s unreachable: %s", socket_path, err)
                _error(self, 503, "metadata temporarily unavailable")
            finally:
                conn.close()

        do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("proxy: " + format, *args)

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stackcore_drivers.network.dhcp.metadata_proxy --network-id ID --socket
    PATH --pid-file PATH``: bind, then fork the daemon (new session, its pid written to the
    pid file) and exit 0; exit 1 with the reason when it cannot bind."""
    unblock_stop_signals()   # whoever started us may have had them blocked
    parser = argparse.ArgumentParser(prog="stackcore-metadata-proxy")
    parser.add_argument("--network-id", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--bind", default=METADATA_ADDRESS)
    parser.add_argument("--port", type=int, default=METADATA_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = make_proxy(args.network_id, args.socket, args.bind, args.port)
    except OSError as err:
        print(f"stackcore-metadata-proxy: cannot listen on {args.bind}:{args.port}: {err}",
              file=sys.stderr)
        return 1
    child = os.fork()
    if child:
        tmp = args.pid_file + ".tmp"
        with open(tmp, "w") as out:
            out.write(f"{child}\n")
        os.replace(tmp, args.pid_file)
        os._exit(0)
    os.setsid()
    LOG.info("metadata proxy of network %s listening on %s:%d", args.network_id, args.bind,
             args.port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
