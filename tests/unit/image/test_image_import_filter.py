"""``[image_import]``: which URLs ``import_from_url`` may make the cloud's hosts fetch (Glance's
import filtering, plus private addresses refused unless allowed). A refused URL is one
``Invalid`` naming the URL and the rule; nothing is fetched (the test server sees no request),
nothing is stored, the image stays queued. Redirects and the address actually connected to
are checked too."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import exception

DATA = b"\0" * 64 * 1024


class Server:
    """A loopback HTTP server: ``/disk`` serves DATA, ``/hop`` redirects to ``self.target``;
    every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.target = ""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the requests are asserted
                pass

            def do_HEAD(self) -> None:  # http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                outer.requests.append(f"{self.command} {self.path}")
                if self.path == "/hop":
                    self.send_response(302)
                    self.send_header("Location", outer.target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(DATA)))
                self.end_headers()
                if body:
                    self.wfile.write(DATA)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def use_tls(self, context: Any) -> None:
        """Answer over TLS from now on (``context``: a server-side SSLContext)."""
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    found = Server()
    yield found
    found.close()


@pytest.fixture
def importing(make_cloud: Callable[..., stackcore.Cloud],
              tmp_path: Path) -> Callable[..., stackcore.Cloud]:
    def make(web: dict[str, Any] | None = None, **rules: Any) -> stackcore.Cloud:
        return make_cloud(overrides={"DEFAULT": {"state_path": str(tmp_path / "state")},
                                     "image": {"stores": ["file", "web"]},
                                     "image_store_web": web or {},
                                     "image_import": rules})
    return make


def _refused(cloud: stackcore.Cloud, url: str, rule: str, why: str = "") -> str:
    image = cloud.image.create("imported")
    before = cloud.image.stores["file"].list_backend_objects()
    with pytest.raises(exception.Invalid) as err:
        cloud.image.import_from_url(image.id, url)
    text = str(err.value)
    assert err.value.kwargs["field"] == "url", err.value.kwargs
    assert f"[image_import] {rule}" in text, (url, text)
    assert why in text, (url, text)
    assert cloud.image.get(image.id).status == "queued"
    assert cloud.image.stores["file"].list_backend_objects() == before
    return text


def test_defaults_refuse_private_addresses_schemes_and_ports(
        importing: Callable[..., stackcore.Cloud], server: Server) -> None:
    cloud = importing()
    cases = [
        ("http://127.0.0.1/disk", "allow_private_addresses", "127.0.0.1, a loopback address"),
        ("http://localhost/disk", "allow_private_addresses", "a loopback address"),
        ("http://2130706433/disk", "allow_private_addresses", "127.0.0.1, a loopback"),
        ("http://[::1]/disk", "allow_private_addresses", "::1, a loopback address"),
        ("http://[::ffff:127.0.0.1]/disk", "allow_private_addresses", "a loopback address"),
        ("http://0.0.0.0/disk", "allow_private_addresses", "an unspecified address"),
        ("http://169.254.169.254/latest/meta-data/", "allow_private_addresses",
         "a link-local address"),
        ("http://10.1.2.3/disk", "allow_private_addresses", "a private address"),
        ("http://192.168.0.1/disk", "allow_private_addresses", "a private address"),
        ("ftp://example.com/disk", "allowed_schemes", "scheme 'ftp' is not one of http, https"),
        ("file:///etc/passwd", "allowed_schemes", "scheme 'file'"),
        (server.url("/disk"), "allowed_ports", f"port {server.port} is not one of 80, 443"),
    ]
    for url, rule, why in cases:
        text = _refused(cloud, url, rule, why)
        assert url in text, text
    assert server.requests == [], "a refused URL was fetched"
    secret = _refused(cloud, "http://user:s3cret@10.0.0.1/disk", "allow_private_addresses")
    assert "s3cret" not in secret, secret


def test_deny_lists_apply_when_allow_lists_are_empty(
        importing: Callable[..., stackcore.Cloud], server: Server) -> None:
    cloud = importing(allowed_ports=[], allow_private_addresses=True,
                      disallowed_hosts=["127.0.0.0/8"], allowed_schemes=[],
                      disallowed_schemes=["ftp"])
    # a name is refused by the addresses it resolves to, not only by how it is written
    _refused(cloud, server.url("/disk", host="localhost"), "disallowed_hosts",
             "host localhost (127.0.0.1) is disallowed")
    _refused(cloud, "ftp://example.com/x", "disallowed_schemes", "scheme 'ftp' is disallowed")
    cloud = importing(allowed_ports=[], disallowed_ports=[server.port],
                      allow_private_addresses=True)
    _refused(cloud, server.url("/disk"), "disallowed_ports", f"port {server.port}")
    assert server.requests == []


def test_allowed_host_imports_and_redirects_are_checked(
        importing: Callable[..., stackcore.Cloud], server: Server) -> None:
    cloud = importing(allowed_hosts=["127.0.0.1"], allowed_ports=[server.port, 80])
    image = cloud.image.create("allowed")
    assert cloud.image.import_from_url(image.id, server.url("/disk")).status == "active"
    # a redirect within the rules is followed
    server.target = server.url("/disk")
    image = cloud.image.create("redirected")
    assert cloud.image.import_from_url(image.id, server.url("/hop")).status == "active"
    # a redirect outside them is refused before anything is fetched from its target
    for target, rule in (("http://169.254.169.254/latest/meta-data/", "allowed_hosts"),
                         ("http://127.0.0.1:1/disk", "allowed_ports")):
        server.target = target
        server.requests.clear()
        text = _refused(cloud, server.url("/hop"), rule)
        assert target in text, text
        assert server.requests == ["HEAD /hop"], server.requests


def test_the_address_connected_to_is_checked(importing: Callable[..., stackcore.Cloud],
                                             server: Server,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name resolves to a public address when checked, to loopback when
    connected. The connection goes to the address it checked, so the loopback answer is
    refused. (A resolver stands in for a DNS server the test cannot run.)"""
    cloud = importing(allowed_ports=[])
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        # the API's and the store's checks get a public address; the connection, loopback
        address = "93.184.216.34" if len(answers) < 2 else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    text = _refused(cloud, server.url("/disk", host="rebind.example"),
                    "allow_private_addresses", "resolves to 127.0.0.1, a loopback address")
    assert answers == ["93.184.216.34", "93.184.216.34", "127.0.0.1"], answers
    assert server.requests == [], f"fetched from the rebound address: {text}"


def test_bad_rules_fail_start_up(importing: Callable[..., stackcore.Cloud]) -> None:
    with pytest.raises(exception.ConfigError,
                       match=r"\[image_import\] allowed_hosts: '10.0.0.0/33'"):
        importing(allowed_hosts=["10.0.0.0/33"])


def test_https_import_through_the_checked_address(importing: Callable[..., stackcore.Cloud],
                                                  server: Server, tmp_path: Path) -> None:
    """The connection is made to the checked address, and TLS still verifies the certificate
    against the URL's host name (the CA is the test's own)."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.use_tls(context)
    cloud = importing(web={"ca_file": str(cert)}, allowed_hosts=["localhost", "127.0.0.1"],
                      allowed_ports=[])
    url = f"https://localhost:{server.port}/disk"
    image = cloud.image.create("over tls")
    assert cloud.image.import_from_url(image.id, url).size_bytes == len(DATA)
    # the same server by address: the certificate does not name 127.0.0.1
    image = cloud.image.create("wrong name")
    with pytest.raises(exception.StackcoreError, match="certificate|CERTIFICATE"):
        cloud.image.import_from_url(
            image.id, f"https://127.0.0.1:{server.port}/disk")
