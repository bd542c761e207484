"""The metadata service's HTTP server (stdlib ``ThreadingHTTPServer``).

Guests never reach it directly: a metadata proxy on their network (Neutron's metadata agent,
haproxy) answers ``169.254.169.254``, works out which server asks from the source address and
forwards the request with Nova's headers:

* ``X-Instance-ID`` - the server's uuid;
* ``X-Tenant-ID`` - its project;
* ``X-Instance-ID-Signature`` - hex HMAC-SHA256 of the uuid under the shared secret
  (``[metadata] metadata_proxy_shared_secret``).

Answers: 400 when a header is missing, 403 when the signature is wrong (compared in constant
time), 404 for a server that does not exist, is deleted or is not the project's (and for a
path with nothing there), 405 for anything but GET and HEAD. The secret and the signatures are
never logged. The service refuses to start without a secret (Nova would answer unsigned
requests: any guest could read any other's keys and user data) or with a vendor data file
that is not a JSON object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.server
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import orm

from stackcore import exception
from stackcore.compute import models
from stackcore.compute.metadata import content
from stackcore.compute.states import VmState

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.db.api import Database
    from stackcore.network.api import NetworkAPI

LOG = logging.getLogger(__name__)

INSTANCE_HEADER = "X-Instance-ID"
TENANT_HEADER = "X-Tenant-ID"
SIGNATURE_HEADER = "X-Instance-ID-Signature"


def sign(secret: str, instance_id: str) -> str:
    """What a metadata proxy sends as ``X-Instance-ID-Signature`` (Nova's algorithm)."""
    return hmac.new(secret.encode("utf-8"), instance_id.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def load_vendor_data(path: str) -> dict[str, Any]:
    """The vendor data file's JSON object ({} without a file); ConfigError naming the option
    and the file otherwise."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        raise exception.ConfigError(
            f"[metadata] vendor_data_file {path!r} cannot be read as JSON: "
            f"{type(err).__name__}: {err}", section="metadata",
            option="vendor_data_file") from None
    if not isinstance(data, dict):
        raise exception.ConfigError(
            f"[metadata] vendor_data_file {path!r} holds a JSON {type(data).__name__}, not an "
            "object", section="metadata", option="vendor_data_file")
    return data


def check_config(conf: cfg.ConfigOpts) -> dict[str, Any]:
    """The vendor data, once the ``[metadata]`` options are checked: a secret is set and the
    vendor data file is a JSON object. ConfigError naming the option otherwise - raised when
    the process loads its plugins, before any service starts."""
    if not conf.metadata.metadata_proxy_shared_secret:
        raise exception.ConfigError(
            "the metadata service needs [metadata] metadata_proxy_shared_secret: it answers "
            "only requests signed by a metadata proxy", section="metadata",
            option="metadata_proxy_shared_secret")
    return load_vendor_data(conf.metadata.vendor_data_file)


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MetadataServer:
    """The metadata service of one process: ``start()`` binds and serves in a thread,
    ``stop()`` shuts it down (within a poll interval)."""

    POLL_INTERVAL = 0.1

    def __init__(self, conf: cfg.ConfigOpts, db: Database, network: NetworkAPI | None) -> None:
        options = conf.metadata
        self.vendor_data = check_config(conf)
        self._secret = str(options.metadata_proxy_shared_secret)
        self.db = db
        self.network = network
        self._host, self._port = str(options.listen_host), int(options.listen_port)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` it listens on (the port chosen when ``listen_port`` is 0)."""
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"metadata": self})
        try:
            server = http.server.ThreadingHTTPServer((self._host, self._port), handler)
        except OSError as err:
            raise exception.ConfigError(
                f"the metadata service cannot listen on [metadata] listen_host:listen_port "
                f"{self._host}:{self._port}: {err.strerror or err}", section="metadata",
                option="listen_port") from None
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": self.POLL_INTERVAL},
                                        name="metadata-http", daemon=True)
        self._thread.start()
        LOG.info("metadata service listening on %s:%d", *self.address)

    def stop(self) -> None:
        """Stop serving (requests in progress end on their own daemon threads)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        LOG.info("metadata service stopped")

    # --- answering -------------------------------------------------------------------------

    def check(self, headers: Any) -> tuple[str, str]:
        """``(instance id, project id)`` of a signed request; _Refused otherwise."""
        values = {}
        for name in (INSTANCE_HEADER, TENANT_HEADER, SIGNATURE_HEADER):
            value = headers.get(name)
            if not value:
                raise _Refused(400, f"header {name} is missing")
            values[name] = value
        expected = sign(self._secret, values[INSTANCE_HEADER]).encode("ascii")
        given = values[SIGNATURE_HEADER].encode("utf-8", "replace")
        if not hmac.compare_digest(expected, given):
            raise _Refused(403, f"the signature of instance {values[INSTANCE_HEADER]!r} is "
                           "wrong")
        return values[INSTANCE_HEADER], values[TENANT_HEADER]

    def instance(self, instance_id: str, project_id: str) -> content.Instance:
        """What the trees say about the server; _Refused(404) if it is not there, deleted or
        not the project's."""
        with self.db.read() as session:
            row = session.get(models.Instance, instance_id, options=[
                orm.undefer(models.Instance.key_data), orm.undefer(models.Instance.user_data)])
            if row is None or row.vm_state == VmState.DELETED or row.project_id != project_id:
                raise _Refused(404, f"no server {instance_id!r} in project {project_id!r}")
            values: dict[str, Any] = {
                "uuid": row.uuid, "name": row.name, "project_id": row.project_id,
                "availability_zone": row.availability_zone, "metadata": dict(row.metadata_),
                "flavor_name": str(row.flavor.get("name", "")), "image_id": row.image_id,
                "key_name": row.key_name, "key_data": row.key_data,
                "user_data": _decoded(row.user_data)}
        ports, groups = self._ports(instance_id)
        return content.Instance(**values, ports=ports, security_groups=groups)

    def _ports(self, instance_id: str) -> tuple[tuple[content.Port, ...], tuple[str, ...]]:
        if self.network is None:
            return (), ()
        network = self.network
        ports = []
        group_ids: list[str] = []
        subnets: dict[str, content.Subnet] = {}
        for port in sorted(network.list_ports(device_id=instance_id, all_projects=True),
                           key=lambda p: (p.created_at, p.id)):
            addresses = []
            for fixed in port.fixed_ips:
                if fixed.subnet_id not in subnets:
                    found = network.get_subnet(fixed.subnet_id)
                    subnets[fixed.subnet_id] = content.Subnet(
                        found.id, found.cidr, found.ip_version, found.gateway_ip,
                        found.enable_dhcp, tuple(found.dns_nameservers),
                        tuple(dict(r) for r in found.host_routes))
                addresses.append(content.PortAddress(fixed.ip_address,
                                                     subnets[fixed.subnet_id]))
            vif = port.vif_type if port.vif_type not in ("unbound", "binding_failed") else ""
            ports.append(content.Port(port.id, port.network_id, port.mac_address,
                                      network.get_network(port.network_id).mtu, vif,
                                      tuple(addresses)))
            group_ids += [g for g in port.security_groups if g not in group_ids]
        names = tuple(network.get_security_group(g).name for g in group_ids)
        return tuple(ports), names

    def answer(self, path: str, headers: Any) -> tuple[int, str, bytes]:
        """``(status, content type, body)`` for a GET of ``path`` (``headers``: a mapping
        with case-insensitive ``get``, as ``http.server`` gives)."""
        try:
            instance_id, project_id = self.check(headers)
            found = content.resolve(content.tree(self.instance(instance_id, project_id),
                                                 os.urandom(512), self.vendor_data), path)
        except _Refused as refused:
            LOG.info("metadata: %s refused (%d): %s", path, refused.status, refused.reason)
            return refused.status, "text/plain; charset=utf-8", \
                f"{refused.status} {refused.reason}\n".encode()
        if found is None:
            return 404, "text/plain; charset=utf-8", b"404 nothing at this path\n"
        LOG.debug("metadata: %s for server %s", path, instance_id)
        return 200, found[0], found[1]


def _decoded(user_data: str | None) -> bytes | None:
    if user_data is None:
        return None
    try:
        return base64.b64decode(user_data, validate=True)
    except binascii.Error:  # create_server checked it: never stored so
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    metadata: MetadataServer
    server_version = "stackcore-metadata"
    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, content_type: str, body: bytes, *, head: bool = False,
               extra: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        try:
            status, kind, body = self.metadata.answer(path, self.headers)
        except Exception:
            LOG.exception("metadata: %s failed", path)
            status, kind, body = 500, "text/plain; charset=utf-8", b"500 internal error\n"
        self._reply(status, kind, body, head=head)

    def do_GET(self) -> None:  # http.server calls do_<METHOD>
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        self.close_connection = True  # its body, if any, is never read
        self._reply(405, "text/plain; charset=utf-8", b"405 only GET and HEAD\n",
                    extra={"Allow": "GET, HEAD", "Connection": "close"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:
        """The request line and status only (never headers: they carry the signature)."""
        LOG.debug("metadata %s: " + format, self.client_address[0], *args)
