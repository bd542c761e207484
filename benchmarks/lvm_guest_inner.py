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

from stackcore_drivers.volume import lvm as lvm_module

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
    ops = ("create", "snapshot", "clone", "delete")
    times: dict[str, dict[str, list[float]]] = {
        op: {"framework": [], "raw": []} for op in ops}
    # The commands each driver call runs, and its time outside them (under TCG one lvm
    # command costs 0.5-5 s, so the count and the time outside say what the difference of two
    # noisy medians cannot).
    commands: dict[str, list[int]] = {op: [] for op in ops}
    outside: dict[str, list[float]] = {op: [] for op in ops}
    ran: list[float] = []
    real = lvm_module.execute

    def counting(*cmd: str, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return real(*cmd, **kwargs)
        finally:
            ran.append((time.perf_counter() - start) * 1000)

    lvm_module.execute = counting

    def framework(op: str, fn) -> None:  # type: ignore[no-untyped-def]
        ran.clear()
        took = timed(fn)
        times[op]["framework"].append(took)
        commands[op].append(len(ran))
        outside[op].append(took - sum(ran))

    for i in range(runs):
        vol = Volume(str(uuid.uuid4()), 1)
        snap = Snapshot(str(uuid.uuid4()), vol, 1)
        clone = Volume(str(uuid.uuid4()), 1)
        f = times

        def driver_side() -> None:
            framework("create", lambda: driver.create_volume(vol))
            framework("snapshot", lambda: driver.create_snapshot(snap))
            framework("clone", lambda: driver.create_cloned_volume(clone, vol))
            driver.delete_snapshot(snap)
            driver.delete_volume(clone)
            framework("delete", lambda: driver.delete_volume(vol))

        def raw_side() -> None:
            raw = f"raw-{uuid.uuid4().hex[:8]}"
            f["create"]["raw"].append(timed(lambda: lvm("lvcreate", "-n", raw, "-V", "1g",
                                                         "-T", pool, "-y")))
            f["snapshot"]["raw"].append(timed(lambda: lvm(
                "lvcreate", "-s", "-n", raw + "-s", "--setactivationskip", "n", "-ay",
                f"{vg}/{raw}")))
            f["clone"]["raw"].append(timed(lambda: lvm(
                "lvcreate", "-s", "-n", raw + "-c", "--setactivationskip", "n", "-ay",
                f"{vg}/{raw}")))
            lvm("lvremove", "-f", f"{vg}/{raw}-s")
            lvm("lvremove", "-f", f"{vg}/{raw}-c")
            f["delete"]["raw"].append(timed(lambda: lvm("lvremove", "-f", f"{vg}/{raw}")))

        # each side goes first every other run: neither gains from the other's warm caches
        for side in ((driver_side, raw_side) if i % 2 == 0 else (raw_side, driver_side)):
            side()
    out = {}
    for op, row in times.items():
        fw, raw = statistics.median(row["framework"]), statistics.median(row["raw"])
        out[op] = {"framework_ms": round(fw, 1), "raw_ms": round(raw, 1),
                   "fixed_ms": round(fw - raw, 1), "runs": runs,
                   "driver_commands": max(commands[op]), "raw_commands": 1,
                   "outside_commands_ms": round(statistics.median(outside[op]), 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]))
