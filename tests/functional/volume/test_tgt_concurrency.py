"""Targets made at the same time by several processes on one tgtd (two volume services of a
host, or a service and an operator's tool): each gets a target id of its own and every one
exists. tgt-admin picks a new target's id as the highest listed plus one, so without the
host-wide lock of stackcore_drivers.volume.tgt two makers take the same id and one of them
fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from stackcore_drivers.volume.tgt import TgtTarget

from tests.conftest import backend_env

pytestmark = pytest.mark.real

PROCESSES = 4
TARGETS_EACH = 4

#: one maker: waits for the go on stdin, then makes its targets as fast as it can
_MAKER = textwrap.dedent("""
    import json, os, sys
    from stackcore_drivers.volume.tgt import TgtTarget
    workdir, prefix, portal, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    target = TgtTarget(os.path.join(workdir, "volumes"), prefix, portal)
    luns = []
    for i in range(count):
        path = os.path.join(workdir, f"lun-{i}.img")
        with open(path, "wb") as handle:
            handle.truncate(1024 * 1024)
        luns.append(path)
    print("ready", flush=True)
    sys.stdin.readline()  # the go: every maker starts at once
    made, failed = {}, {}
    for i, path in enumerate(luns):
        name = f"volume-{i}"
        try:
            location = target.create(name, path)["provider_location"]
            made[target.iqn(name)] = int(location.split(" ")[0].rsplit(",", 1)[1])
        except Exception as err:
            failed[target.iqn(name)] = str(err)
    print(json.dumps({"made": made, "failed": failed}), flush=True)
""")


def test_targets_made_at_once_by_several_processes_each_get_their_own_id(
        tmp_path: Path) -> None:
    portal = backend_env("STACKCORE_TEST_ISCSI_PORTAL", "tgt")
    run = uuid.uuid4().hex[:8]
    prefixes = [f"iqn.2010-10.org.stackcore.test-{run}-{n}:" for n in range(PROCESSES)]
    makers = []
    try:
        for n, prefix in enumerate(prefixes):
            workdir = tmp_path / f"maker-{n}"
            workdir.mkdir()
            makers.append(subprocess.Popen(
                [sys.executable, "-c", _MAKER, str(workdir), prefix, portal,
                 str(TARGETS_EACH)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        for maker in makers:
            assert maker.stdout is not None
            line = maker.stdout.readline().strip()
            assert line == "ready", f"a maker did not start: {line!r} {maker.communicate()}"
        for maker in makers:
            assert maker.stdin is not None
            maker.stdin.write("go\n")
            maker.stdin.flush()
        results = []
        for maker in makers:
            out, err = maker.communicate(timeout=300)
            assert maker.returncode == 0, f"a maker failed ({maker.returncode}): {err[-2000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
        failed = {iqn: why for r in results for iqn, why in r["failed"].items()}
        assert failed == {}, f"targets not made: {failed}"
        made = {iqn: tid for r in results for iqn, tid in r["made"].items()}
        assert len(made) == PROCESSES * TARGETS_EACH, made
        assert len(set(made.values())) == len(made), f"a target id given twice: {made}"
        running = TgtTarget(str(tmp_path), "", portal).targets()
        assert {iqn: running.get(iqn) for iqn in made} == made, \
            f"made {made}, tgtd lists {running}"
    finally:
        for maker in makers:
            if maker.poll() is None:
                maker.kill()
                maker.wait()
        for n, prefix in enumerate(prefixes):
            target = TgtTarget(str(tmp_path / f"maker-{n}" / "volumes"), prefix, portal)
            for i in range(TARGETS_EACH):
                target.remove(f"volume-{i}")
