"""The shipped compute conformance suite passes for the libvirt driver on ``test:///default``
(run as a driver package would run it: its own pytest process, the kit selected by entry point).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

try:
    import libvirt  # noqa: F401
except ImportError as err:  # a missing extra is a broken test environment, not a skip
    raise ImportError(f"{err}: install the driver extra: pip install -e 'drivers[libvirt]'") from err

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))


def test_compute_conformance_suite_passes_on_the_test_driver(tmp_path: Any) -> None:
    results = tmp_path / "compute-libvirt.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "stackcore",
         os.path.join(ROOT, "tests", "conformance", "test_compute.py"),
         "--stackcore-driver", "compute:libvirt",
         "--stackcore-config", os.path.join(HERE, "conformance-test-driver.conf"),
         "--stackcore-results", str(results)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    report = json.loads(results.read_text())
    assert report["driver"] == "libvirt"
    outcomes = {name: feature["result"] for name, feature in report["features"].items()}
    expected = {"lifecycle", "stats", "attach_volume", "console_output", "pause", "plug_vifs",
                "snapshot", "suspend", "resize", "boot_from_volume"}
    assert expected <= set(outcomes)
    # libvirt's test driver has no device hot-plug: the driver says so
    # (unavailable_features) and the kit skips exactly those capabilities, with the reason.
    hotplug = {"attach_volume", "plug_vifs"}
    # nor can it migrate a domain to another host (live_migration: skipped with the reason)
    assert outcomes.pop("live_migration") == "skip", outcomes
    assert "cannot migrate" in report["features"]["live_migration"]["reasons"][0], report
    # snapshots are cold (the manager suspends a running guest): live_snapshot is not
    # declared, and its test fails as expected
    assert outcomes.pop("live_snapshot") == "unsupported", outcomes
    assert {o for n, o in outcomes.items() if n not in hotplug} == {"pass"}, outcomes
    assert {outcomes[n] for n in hotplug} == {"skip"}, outcomes
    reasons = report["features"]["plug_vifs"]["reasons"]
    assert reasons and all("has no device hot-plug" in r for r in reasons), reasons
