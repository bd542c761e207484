"""Cold ``import stackcore`` + load and verify every installed plugin of every family.

Measured in fresh interpreters (median of several), minus the bare interpreter start-up measured
the same way, so the figure is what stackcore adds. Goal: < 150 ms.

Bytecode is compiled once before measuring (into a private cache directory), as ``pip install``
does for an installed package: a "cold import" means loading modules, not compiling them, even
where the environment sets PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LOAD_ALL = (
    "import stackcore\n"
    "from stackcore import families\n"
    "from stackcore.plugins import loader\n"
    "for f in families.kinds():\n"
    "    found = loader.discover(f.namespace, f.contract())\n"
)


def _median_ms(code: str, env: dict[str, str], runs: int = 7) -> float:
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # compiles the bytecode
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> dict[str, float]:
    cache = tempfile.mkdtemp(prefix="stackcore-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    try:
        bare = _median_ms("pass", env)
        imported = _median_ms("import stackcore", env) - bare
        loaded = _median_ms(LOAD_ALL, env) - bare
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"import: `import stackcore` {imported:.0f} ms | import + load/verify all plugins "
          f"{loaded:.0f} ms (interpreter start {bare:.0f} ms excluded) | goal < 150 ms: "
          f"{'met' if loaded < 150 else 'MISSED'}")
    return {"import_ms": imported, "load_all_ms": loaded}


if __name__ == "__main__":
    main()
