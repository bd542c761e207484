"""A worker process for the concurrency tests: one Cloud (API only by default) on a shared
database, driven over stdin/stdout.

    python worker.py '<json: {"overrides": {...}, "services": [...], "fake_hosts": N}>'

It prints ``ready`` once its Cloud is up, then reads one JSON line per batch - a list of
``{"op": NAME, ...arguments}`` - runs the operations in order and answers one JSON line: a
list with, per operation, ``{"ok": value}`` or ``{"error": "ExceptionClass", "message": ...}``
for a stackcore error (an expected outcome under concurrency: conflicts, exhaustion). Any
other exception is a defect: it is answered as ``{"crash": traceback}`` so the test fails
with it. An empty line or end of input closes the Cloud and exits.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import stackcore
from stackcore import exception
from stackcore.db import api as db_api


def _network_create(cloud: stackcore.Cloud, segmentation_id: int | None = None) -> dict:
    if segmentation_id is None:
        net = cloud.network.create_network("w")
    else:
        net = cloud.network.create_network("p", network_type="vxlan",
                                           segmentation_id=segmentation_id)
    return {"id": net.id, "seg": net.segmentation_id}


def _network_churn(cloud: stackcore.Cloud) -> int | None:
    net = cloud.network.create_network("c")
    cloud.network.delete_network(net.id)
    return net.segmentation_id


def _subnet_create(cloud: stackcore.Cloud, network_id: str, cidr: str) -> str:
    return cloud.network.create_subnet(network_id, cidr).id


def _port_create(cloud: stackcore.Cloud, network_id: str) -> dict:
    port = cloud.network.create_port(network_id)
    return {"id": port.id, "ips": [ip.ip_address for ip in port.fixed_ips]}


def _volume_create(cloud: stackcore.Cloud, size: int) -> dict:
    volume = cloud.volume.create(size, wait=True)
    return {"id": volume.id, "status": volume.status}


def _server_create(cloud: stackcore.Cloud, flavor: str) -> dict:
    server = cloud.compute.create_server("s", flavor, "img", wait=True)
    return {"id": server.id, "status": server.status, "host": server.host}


OPS: dict[str, Callable[..., Any]] = {
    "network_create": _network_create,
    "network_delete": lambda cloud, id: cloud.network.delete_network(id),
    "network_churn": _network_churn,
    "subnet_create": _subnet_create,
    "port_create": _port_create,
    "port_delete": lambda cloud, id: cloud.network.delete_port(id),
    "volume_create": _volume_create,
    "volume_delete": lambda cloud, id: cloud.volume.delete(id),
    "server_create": _server_create,
    "server_delete": lambda cloud, id: cloud.compute.delete_server(id),
    "retry_counts": lambda cloud: db_api.retry_counts(),
}


def _run(cloud: stackcore.Cloud, op: dict[str, Any]) -> dict[str, Any]:
    args = dict(op)
    name = args.pop("op")
    try:
        return {"ok": OPS[name](cloud, **args)}
    except exception.StackcoreError as err:
        return {"error": type(err).__name__, "message": str(err)}
    except Exception:  # reported to the test, which fails on it
        return {"crash": traceback.format_exc()}


def main() -> None:
    spec = json.loads(sys.argv[1])
    kwargs: dict[str, Any] = {"overrides": spec.get("overrides", {}),
                              "services": tuple(spec.get("services", ()))}
    if "fake_hosts" in spec:
        kwargs["fake_hosts"] = spec["fake_hosts"]
    with stackcore.Cloud(**kwargs) as cloud:
        print("ready", flush=True)
        for line in sys.stdin:
            if not line.strip():
                break
            print(json.dumps([_run(cloud, op) for op in json.loads(line)]), flush=True)


if __name__ == "__main__":
    main()
