"""200 concurrent placements from 8 processes on 50 hosts over PostgreSQL: zero overcommit.

Runs the claims benchmark's :func:`run` (``benchmarks/scheduler_claims.py``) on a fresh
database and audits it: demand exceeds room by 50, so exactly the room is used and the rest
get NoValidHost; no host holds more than it has; the counters equal the allocation rows."""

from __future__ import annotations

import importlib.util
import os

import pytest

pytestmark = [pytest.mark.real, pytest.mark.postgres]

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks",
                     "scheduler_claims.py")


def _bench():
    spec = importlib.util.spec_from_file_location("scheduler_claims", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_concurrent_placements_across_processes_never_overcommit(pg_url) -> None:
    result = _bench().run(pg_url, hosts=50, placements=200, processes=8, threads=5)
    assert result["placements"] == 200
    assert result["overcommitted_hosts"] == []
    assert result["counter_mismatches"] == []
    assert result["placed"] == result["room"] == 150
    assert result["no_valid_host"] == 50
    assert result["max_per_host"] == 3
