"""The network conformance suites against PostgreSQL (``[database] connection`` set to a
throwaway database), for every core type and mechanism driver."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.real, pytest.mark.postgres]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
CONFIGS = os.path.join(ROOT, "tests", "conformance", "configs")


@pytest.mark.parametrize(("family", "driver"), [
    ("type", "flat"), ("type", "vlan"), ("type", "vxlan"),
    ("mechanism", "fake"), ("mechanism", "fake_tor"), ("mechanism", "logger"),
])
def test_suite_passes_on_postgresql(pg_url: str, tmp_path, family: str, driver: str) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           os.path.join(ROOT, "tests", "conformance", f"test_network_{family}.py"),
           "--stackcore-driver", f"network.{family}:{driver}",
           "--stackcore-set", f"database.connection={pg_url}",
           "--stackcore-results", str(tmp_path / "result.json")]
    config = os.path.join(CONFIGS, f"network.{family}-{driver}.conf")
    if os.path.exists(config):
        cmd += ["--stackcore-config", config]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
