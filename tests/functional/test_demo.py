"""The README's first command on this machine's real backends: `stackcore demo`."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.real


def _domains() -> set[str]:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                         capture_output=True, text=True, check=True).stdout
    return {line for line in out.split() if line.startswith("instance-")}


def test_demo_uses_the_real_backends_and_leaves_nothing(tmp_path) -> None:
    before = _domains()
    result = subprocess.run([sys.executable, "-m", "stackcore.cli.main", "demo"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "compute  real  libvirt (qemu:///system" in out
    assert "network  real  openvswitch" in out
    assert "volume   real  nfs" in out and "volume   real  rbd" in out
    assert "demo-1: ACTIVE on demo-host [ovs 10.20.0." in out
    assert "demo-2: ACTIVE on demo-host [ovs 10.20.0." in out
    assert "demo-1 volumes: /dev/sdb (attached)" in out
    assert "stackcore demo: done" in out
    assert _domains() <= before, "the demo left domains behind"
