"""Start-up: cold ``import stackcore`` + load and verify every installed plugin of every family,
and an embedded default ``Cloud()`` ready, each against a bare interpreter start.

Each figure is the median of ``--runs`` fresh interpreters, timed inside the interpreter from
before ``import stackcore`` to the end of the work (so the interpreter's own start-up is not in
it); the anchor is the wall time of a bare ``python -c pass`` measured the same way around the
subprocess, in the same run. Goals: load/verify all plugins < 100 ms, ``Cloud()`` ready
< 150 ms.

Bytecode is compiled once before measuring (into a private cache directory), as ``pip install``
does for an installed package: a "cold import" means loading modules, not compiling them, even
where the environment sets PYTHONDONTWRITEBYTECODE.

    python benchmarks/import_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

GOALS_MS = {"load_all_ms": 100.0, "cloud_ms": 150.0}

_TIMED = (
    "import time\n"
    "_t0 = time.perf_counter()\n"
    "{body}"
    "print((time.perf_counter() - _t0) * 1000)\n"
    "{after}"
)

IMPORT = "import stackcore\n"
LOAD_ALL = (
    "import stackcore\n"
    "from stackcore import families\n"
    "from stackcore.plugins import loader\n"
    "for f in families.kinds():\n"
    "    found = loader.discover(f.namespace, f.contract())\n"
)
CLOUD = "import stackcore\ncloud = stackcore.Cloud()\n"


def _wall_ms(code: str, env: dict[str, str], runs: int) -> float:
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # compiles the bytecode
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _inner_ms(body: str, env: dict[str, str], runs: int, after: str = "") -> float:
    code = _TIMED.format(body=body, after=after)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], check=True, env=env,
                             capture_output=True, text=True).stdout
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv if argv is not None else [])
    cache = tempfile.mkdtemp(prefix="stackcore-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    try:
        bare = _wall_ms("pass", env, args.runs)
        imported = _inner_ms(IMPORT, env, args.runs)
        loaded = _inner_ms(LOAD_ALL, env, args.runs)
        cloud = _inner_ms(CLOUD, env, args.runs, after="cloud.close()\n")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    load_met = loaded < GOALS_MS["load_all_ms"]
    cloud_met = cloud < GOALS_MS["cloud_ms"]
    print(f"start-up: `import stackcore` {imported:.0f} ms | import + load/verify all plugins "
          f"{loaded:.0f} ms ({loaded / bare:.1f}x a bare interpreter start, {bare:.0f} ms) | "
          f"Cloud() ready {cloud:.0f} ms ({cloud / bare:.1f}x) | goals < 100 ms: "
          f"{'met' if load_met else 'MISSED'}, < 150 ms: {'met' if cloud_met else 'MISSED'}")
    return {
        "bare_interpreter_ms": bare, "import_ms": imported, "load_all_ms": loaded,
        "cloud_ms": cloud,
        "summary": {
            "text": f"plugins {loaded:.0f} ms = {loaded / bare:.1f}x, Cloud() {cloud:.0f} ms = "
                    f"{cloud / bare:.1f}x a bare `python -c pass` ({bare:.0f} ms)",
            "goal": "plugins < 100 ms, Cloud() < 150 ms", "met": load_met and cloud_met},
    }


if __name__ == "__main__":
    main(sys.argv[1:])
