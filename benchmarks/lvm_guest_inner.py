# ruff: noqa: B023  (each timed lambda runs before the loop moves on)
"""Run inside the guest by benchmarks/lvm_guest.py: driver call vs the raw lvm command."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from stackcore.testing.harness import DriverUnderTest
from stackcore.volume.objects import Snapshot, Volume


def lvm(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, env={**os.environ,
                                                                      "LC_ALL": "C"})


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main(runs: int) -> None:
    vg = os.environ["STACKCORE_TEST_LVM_VG"]
    target = DriverUnderTest.from_spec("volume:lvm", [], [
        f"backend.volume_group={vg}", f"DEFAULT.state_path={tempfile.mkdtemp()}"])
    driver = target.new("backend", "bench@backend")
    driver.do_setup()
    if runs == 0:  # benchmarks/lvm_guest.py --setup-only: the smoke test, nothing timed
        print(json.dumps({}))
        return
    pool = f"{vg}/{driver.pool}"
    times: dict[str, dict[str, list[float]]] = {
        op: {"framework": [], "raw": []} for op in ("create", "snapshot", "clone", "delete")}
    for _ in range(runs):
        vol = Volume(str(uuid.uuid4()), 1)
        snap = Snapshot(str(uuid.uuid4()), vol, 1)
        clone = Volume(str(uuid.uuid4()), 1)
        f = times
        f["create"]["framework"].append(timed(lambda: driver.create_volume(vol)))
        f["snapshot"]["framework"].append(timed(lambda: driver.create_snapshot(snap)))
        f["clone"]["framework"].append(timed(lambda: driver.create_cloned_volume(clone, vol)))
        driver.delete_snapshot(snap)
        driver.delete_volume(clone)
        f["delete"]["framework"].append(timed(lambda: driver.delete_volume(vol)))
        raw = f"raw-{uuid.uuid4().hex[:8]}"
        f["create"]["raw"].append(timed(lambda: lvm("lvcreate", "-n", raw, "-V", "1g", "-T",
                                                     pool, "-y")))
        f["snapshot"]["raw"].append(timed(lambda: lvm(
            "lvcreate", "-s", "-n", raw + "-s", "--setactivationskip", "n", "-ay",
            f"{vg}/{raw}")))
        f["clone"]["raw"].append(timed(lambda: lvm(
            "lvcreate", "-s", "-n", raw + "-c", "--setactivationskip", "n", "-ay",
            f"{vg}/{raw}")))
        lvm("lvremove", "-f", f"{vg}/{raw}-s")
        lvm("lvremove", "-f", f"{vg}/{raw}-c")
        f["delete"]["raw"].append(timed(lambda: lvm("lvremove", "-f", f"{vg}/{raw}")))
    out = {}
    for op, row in times.items():
        fw, raw = statistics.median(row["framework"]), statistics.median(row["raw"])
        out[op] = {"framework_ms": round(fw, 1), "raw_ms": round(raw, 1),
                   "fixed_ms": round(fw - raw, 1), "runs": runs}
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]))
