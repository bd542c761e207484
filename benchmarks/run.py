"""Run every benchmark (or those named) and print one line each; optionally write JSON.

    python benchmarks/run.py [NAME ...] [--json results.json]
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys


def main(argv: list[str]) -> int:
    out = None
    if "--json" in argv:
        index = argv.index("--json")
        out = argv[index + 1]
        argv = argv[:index] + argv[index + 2:]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    names = argv or sorted(m.name for m in pkgutil.iter_modules([here]) if m.name != "run")
    results = {}
    for name in names:
        module = importlib.import_module(name)
        results[name] = module.main()
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
