"""Run every benchmark (or those named) and print one line each; optionally write JSON.

    python benchmarks/run.py [NAME ...] [--json results.json]
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys

#: Every benchmark, cheapest first. (ml2_vxlan_neutron.py is not one: ml2_vxlan runs it inside
#: Neutron's own virtualenv.)
BENCHMARKS = ["rpc_dispatch", "import_time", "ml2_vxlan", "scheduler_vs_nova",
              "scheduler_claims", "volume_overhead", "lvm_guest"]


def main(argv: list[str]) -> int:
    out = None
    if "--json" in argv:
        index = argv.index("--json")
        out = argv[index + 1]
        argv = argv[:index] + argv[index + 2:]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    names = argv or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
        return 2
    results = {}
    for name in names:
        main_fn = importlib.import_module(name).main
        # Benchmarks with their own command line get an empty one (their defaults).
        results[name] = main_fn([]) if inspect.signature(main_fn).parameters else main_fn()
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
