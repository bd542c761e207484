"""Cold ``import stackcore`` + load and verify every installed plugin of every family.

Measured in fresh interpreters (median of several), minus the bare interpreter start-up measured
the same way, so the figure is what stackcore adds. Goal: < 150 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

LOAD_ALL = (
    "import stackcore\n"
    "from stackcore.plugins import families, loader\n"
    "for f in families.FAMILIES:\n"
    "    found = loader.discover(f.namespace, f.contract())\n"
)


def _median_ms(code: str, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> dict[str, float]:
    bare = _median_ms("pass")
    imported = _median_ms("import stackcore") - bare
    loaded = _median_ms(LOAD_ALL) - bare
    print(f"import: `import stackcore` {imported:.0f} ms | import + load/verify all plugins "
          f"{loaded:.0f} ms (interpreter start {bare:.0f} ms excluded) | goal < 150 ms: "
          f"{'met' if loaded < 150 else 'MISSED'}")
    return {"import_ms": imported, "load_all_ms": loaded}


if __name__ == "__main__":
    main()
