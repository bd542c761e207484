"""Start-up: cold ``import stackcore`` + load and verify every installed plugin of every family,
and an embedded default ``Cloud()`` ready, each against a bare interpreter start.

Each figure is the median of ``--runs`` fresh interpreters, timed inside the interpreter from
before ``import stackcore`` to the end of the work (so the interpreter's own start-up is not in
it), wall and CPU time; the anchor is the wall time of a bare ``python -c pass`` around the
subprocess, in the same run. Goals: load/verify all plugins < 100 ms, ``Cloud()`` ready
< 150 ms, judged on CPU time (on a shared machine the wall time also counts waiting for a core;
the load average is printed).

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
    "_t0, _c0 = time.perf_counter(), time.process_time()\n"
    "{body}"
    "print((time.perf_counter() - _t0) * 1000, (time.process_time() - _c0) * 1000)\n"
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

#: Prints, in import order, every module the body imported that is neither the standard
#: library's nor stackcore's: the third-party libraries it needs.
LIBRARIES_OF = (
    "import sys\n"
    "_before = set(sys.modules)\n"
    "{body}"
    "_own = ('stackcore', 'stackcore_drivers', '__editable__', '_distutils_hack')\n"
    "print(' '.join(m for m in sys.modules if m not in _before and m.split('.')[0] not in "
    "sys.stdlib_module_names and not m.startswith(_own)))\n"
)

#: Imports the modules named in argv, in order (what a body's libraries cost on their own).
IMPORT_LIBRARIES = (
    "import importlib\n"
    "for _name in {names!r}:\n"
    "    try:\n"
    "        importlib.import_module(_name)\n"
    "    except Exception:\n"
    "        pass  # a module importable only in its package's own order: its parent has it\n"
)


def _wall_ms(code: str, env: dict[str, str], runs: int) -> float:
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # compiles the bytecode
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _inner_ms(body: str, env: dict[str, str], runs: int, after: str = ""
              ) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``body`` in fresh interpreters."""
    code = _TIMED.format(body=body, after=after)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    wall, cpu = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], check=True, env=env,
                             capture_output=True, text=True).stdout
        w, c = out.strip().splitlines()[-1].split()
        wall.append(float(w))
        cpu.append(float(c))
    return statistics.median(wall), statistics.median(cpu)


def _libraries_ms(body: str, env: dict[str, str], runs: int,
                  after: str = "") -> tuple[float, float, int]:
    """Median wall and CPU ms of importing, in a fresh interpreter, the third-party modules
    ``body`` imports (SQLAlchemy, oslo.*, stevedore...), and how many: the floor under it that
    no change of stackcore's own can remove, short of not importing them."""
    out = subprocess.run([sys.executable, "-c", LIBRARIES_OF.format(body=body) + after],
                         check=True, env=env, capture_output=True, text=True).stdout
    names = out.strip().splitlines()[-1].split() if out.strip() else []
    wall, cpu = _inner_ms(IMPORT_LIBRARIES.format(names=names), env, runs)
    return wall, cpu, len(names)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv if argv is not None else [])
    cache = tempfile.mkdtemp(prefix="stackcore-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    try:
        bare = _wall_ms("pass", env, args.runs)
        imported, imported_cpu = _inner_ms(IMPORT, env, args.runs)
        loaded, loaded_cpu = _inner_ms(LOAD_ALL, env, args.runs)
        cloud, cloud_cpu = _inner_ms(CLOUD, env, args.runs, after="cloud.close()\n")
        _, load_libs_cpu, load_libs = _libraries_ms(LOAD_ALL, env, args.runs)
        _, cloud_libs_cpu, cloud_libs = _libraries_ms(CLOUD, env, args.runs,
                                                      after="cloud.close()\n")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    load = os.getloadavg()[0]
    # Judged on the CPU time the interpreter used: on a shared machine (load above the core
    # count) the wall time also counts the time spent waiting for a core.
    load_met = loaded_cpu < GOALS_MS["load_all_ms"]
    cloud_met = cloud_cpu < GOALS_MS["cloud_ms"]
    print(f"start-up (load average {load:.1f} on {os.cpu_count()} CPUs), wall / CPU ms: "
          f"`import stackcore` {imported:.0f} / {imported_cpu:.0f} | import + load/verify all "
          f"plugins {loaded:.0f} / {loaded_cpu:.0f} ({loaded / bare:.1f}x a bare interpreter "
          f"start, {bare:.0f} ms) | Cloud() ready {cloud:.0f} / {cloud_cpu:.0f} "
          f"({cloud / bare:.1f}x) | goals (CPU) < 100 ms: {'met' if load_met else 'MISSED'}, "
          f"< 150 ms: {'met' if cloud_met else 'MISSED'}")
    print(f"  floors (CPU ms, the third-party modules each imports, alone): load/verify all "
          f"{load_libs_cpu:.0f} ({load_libs} modules; stackcore's own share "
          f"{loaded_cpu - load_libs_cpu:.0f}), Cloud() {cloud_libs_cpu:.0f} ({cloud_libs} "
          f"modules; stackcore's own share {cloud_cpu - cloud_libs_cpu:.0f})")
    return {
        "bare_interpreter_ms": bare, "import_ms": imported, "import_cpu_ms": imported_cpu,
        "load_all_ms": loaded, "load_all_cpu_ms": loaded_cpu, "cloud_ms": cloud,
        "cloud_cpu_ms": cloud_cpu, "load_average_1min": load,
        "load_all_libraries_cpu_ms": load_libs_cpu, "cloud_libraries_cpu_ms": cloud_libs_cpu,
        "summary": {
            "text": f"plugins {loaded_cpu:.0f} ms CPU ({loaded:.0f} wall) = {loaded / bare:.1f}x, "
                    f"Cloud() {cloud_cpu:.0f} ms CPU ({cloud:.0f} wall) = {cloud / bare:.1f}x a "
                    f"bare `python -c pass` ({bare:.0f} ms)",
            "goal": "plugins < 100 ms, Cloud() < 150 ms", "met": load_met and cloud_met},
    }


if __name__ == "__main__":
    main(sys.argv[1:])
