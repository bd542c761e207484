"""Helpers for tests that run stackcore's console scripts as processes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from stackcore import lifecycle

#: The promise of :mod:`stackcore.lifecycle`: seconds from SIGTERM to the end of the process.
DEADLINE = lifecycle.STOP_DEADLINE


def terminate(proc: subprocess.Popen[str], what: str, log: Path) -> float:
    """One SIGTERM; the seconds until the process ended. Fails if it took longer than the
    deadline or did not exit with status 0 (the log's tail in the message)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(DEADLINE + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{what} still ran {DEADLINE + 10:g} s after SIGTERM\n"
                    f"{log.read_text()[-3000:]}")
    took = time.monotonic() - sent
    assert took <= DEADLINE, f"{what} took {took:.2f} s to exit after SIGTERM"
    assert proc.returncode == 0, f"{what} exit status {proc.returncode}\n{log.read_text()[-3000:]}"
    return took
