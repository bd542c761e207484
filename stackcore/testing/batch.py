"""Run several conformance-kit sessions in one interpreter (``stackcore conformance`` uses it).

Each kit run is its own pytest session (one driver per session), but starting an interpreter
and importing pytest, stackcore and a suite costs more than running a scheduler plugin's
suite. So ``stackcore conformance`` hands the runs that need no configuration (plugins without
a backend) to a few of these workers: each imports once and runs its sessions one after the
other with ``pytest.main``, every session's output captured on its own.

Input: a JSON file ``[[label, [pytest arguments...]], ...]``; output: one JSON line per
session, ``{"label", "status", "seconds", "output"}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Sequence


def run(jobs: Sequence[tuple[str, Sequence[str]]]) -> None:
    import pytest

    for label, args in jobs:
        started = time.monotonic()
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            # stackcore is imported before pytest marks the plugin's modules for rewriting:
            # its warning about that says nothing about the driver under test.
            status = int(pytest.main([*args, "-W",
                                      "ignore::pytest.PytestAssertRewriteWarning"]))
        print(json.dumps({"label": label, "status": status, "output": output.getvalue(),
                          "seconds": round(time.monotonic() - started, 1)}), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    with open(args[0], encoding="utf-8") as handle:
        jobs = [(str(label), [str(a) for a in cmd]) for label, cmd in json.load(handle)]
    run(jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
