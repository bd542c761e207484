"""Backend commands of the volume drivers (``stackcore_drivers.volume.processes.execute``):
a command that outlives its timeout is killed and fails with a DriverError naming it, so a
backend that stops answering fails the driver call instead of holding it (and the resource
it works on) for ever."""

from __future__ import annotations

import os
import time

import pytest
from stackcore_drivers.volume.processes import execute

from stackcore import exception


def test_a_command_past_its_timeout_is_killed_and_fails_naming_itself(tmp_path: object) -> None:
    started = time.monotonic()
    with pytest.raises(exception.DriverError) as failed:
        # the child writes its pid, then would sleep far past the timeout
        execute("sh", "-c", 'echo $$ > "$0"; exec sleep 300', f"{tmp_path}/pid", timeout=1)
    elapsed = time.monotonic() - started
    assert "sh -c did not finish in 1 s (killed)" in str(failed.value), str(failed.value)
    pid = int(open(f"{tmp_path}/pid").read())
    with pytest.raises(ProcessLookupError):  # reaped, not left running (nor a zombie)
        os.kill(pid, 0)
    assert elapsed < 60, f"execute returned {elapsed:.1f} s after a 1 s timeout"


def test_a_failing_command_fails_with_its_exit_code_and_stderr() -> None:
    with pytest.raises(exception.DriverError) as failed:
        execute("sh", "-c", "echo no such volume >&2; exit 5")
    assert "(exit 5): no such volume" in str(failed.value), str(failed.value)
