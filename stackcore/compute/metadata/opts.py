"""Options of the compute metadata service (``[metadata]``), registered with the compute
family's (:func:`stackcore.compute.opts.list_opts`)."""

from __future__ import annotations

from stackcore import lazy

GROUP = "metadata"

OPTS = lazy.options(lambda cfg: [
    cfg.HostAddressOpt(
        "listen_host",
        default="127.0.0.1",
        help="Address the metadata service listens on (the metadata proxies', e.g. the "
        "network nodes' neutron-metadata-agent or haproxy, reach it there).",
    ),
    cfg.PortOpt(
        "listen_port",
        default=8775,
        help="TCP port of the metadata service (Nova's 8775). 0: any free port, logged at "
        "start (tests).",
    ),
    cfg.StrOpt(
        "metadata_proxy_shared_secret",
        default="",
        secret=True,
        help="Secret shared with the metadata proxies, which sign each request with an "
        "HMAC-SHA256 of the instance id (header X-Instance-ID-Signature). Required: unlike "
        "Nova, the service refuses to start without it rather than answer unsigned requests.",
    ),
    cfg.StrOpt(
        "vendor_data_file",
        default="",
        help="A JSON file whose object is served as /openstack/<version>/vendor_data.json "
        "(read and checked when the service starts: a missing or invalid file stops it "
        "from starting). Empty: vendor_data.json is {}.",
    ),
])
