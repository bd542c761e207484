"""In-process RPC dispatch vs oslo.messaging's fake:// transport, in the same run.

Both go through the same endpoint and stackcore's serializer/envelope, so the ratio is the
price of the transport alone. Goal: >= 10,000 calls/s in-process.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

from stackcore import conf, rpc
from stackcore.rpc import Target


class Echo:
    target = Target("bench", version="1.0")

    def echo(self, payload: dict) -> dict:
        return payload


def _rate(transport_url: str, calls: int) -> float:
    options = {"DEFAULT": {"transport_url": transport_url}}
    transport = rpc.get_transport(conf.load(overrides=options))
    server = transport.serve(Target("bench", "h"), Echo())
    client = transport.client(Target("bench", "h"))
    payload = {"instance_uuid": "0b0f3c1e-8d1c-4c3e-9a61-1b4f0f3c1e8d", "flavor": {"vcpus": 1}}
    client.call("echo", payload=payload)  # warm up
    started = time.perf_counter()
    for _ in range(calls):
        client.call("echo", payload=payload)
    elapsed = time.perf_counter() - started
    server.stop()
    transport.close()
    return calls / elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--fake-calls", type=int, default=40)
    args = parser.parse_args(argv if argv is not None else [])
    warnings.simplefilter("ignore")
    inprocess = _rate("inprocess://", args.calls)
    fake = _rate("fake://", args.fake_calls)
    met = inprocess >= 10000
    print(f"rpc: in-process {inprocess:,.0f} calls/s | oslo.messaging fake:// {fake:,.1f} calls/s"
          f" | ratio {inprocess / fake:,.0f}x | goal >= 10,000 calls/s: "
          f"{'met' if met else 'MISSED'}")
    return {"inprocess_calls_per_s": inprocess, "fake_calls_per_s": fake,
            "summary": {"text": f"in-process {inprocess:,.0f} calls/s = {inprocess / fake:,.0f}x "
                                f"oslo.messaging fake:// ({fake:,.1f} calls/s)",
                        "goal": ">= 10,000 calls/s", "met": met}}


if __name__ == "__main__":
    main(sys.argv[1:])
