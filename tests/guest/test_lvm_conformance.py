"""The lvm volume driver's whole conformance suite, inside the full-kernel guest: the guest's
volume group on its scratch disk with device-mapper (thick LVs, a thin pool, snapshots) and
the guest's own tgtd exporting with CHAP (tests/conformance/configs/guest/volume-lvm.conf).

The result (``volume-lvm.json``) goes to the writable share; the guest tier copies it next to
the host's results, so the support matrix shows lvm. Zero skips: every feature passes and
every capability lvm declares (thick and thin provisioning, online extend, zero on delete)
passes; what it declares unsupported is confirmed failing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.guest("device-mapper: LVs with device nodes, snapshots, thin pools")

REPO = Path(__file__).resolve().parents[2]


def test_lvm_conformance_suite_passes_with_zero_skips() -> None:
    results = Path(os.environ["STACKCORE_TEST_GUEST_SHARE"]) / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "stackcore.cli.main", "conformance", "--family", "volume",
         "--driver", "lvm", "--config-dir", str(REPO / "tests/conformance/configs/guest"),
         "--results", str(results)],
        capture_output=True, text=True, timeout=3000, check=False, cwd=REPO)
    output = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, output
    doc = json.loads((results / "volume-lvm.json").read_text())
    outcomes = {feature: value["result"] for feature, value in doc["features"].items()}
    declared = {cap for cap, yes in doc["capabilities"].items() if yes}
    assert {"thin_provisioning", "thick_provisioning"} <= declared, doc["capabilities"]
    not_passing = {f: r for f, r in outcomes.items()
                   if r != "pass" and not (f not in declared and r == "unsupported")}
    assert not_passing == {}, f"{not_passing}\n{output}"
    assert declared <= {f for f, r in outcomes.items() if r == "pass"}, outcomes
    assert " skipped" not in proc.stdout, output
