"""Running backend commands: argument lists only, through oslo.concurrency's processutils.

Failures become :class:`~stackcore.exception.DriverError` naming the command and its stderr;
arguments are never joined into a shell string. processutils masks passwords in what it logs,
and callers never pass secrets as arguments (tgt CHAP goes through a 0600 config file).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any

from stackcore import exception


def execute(*cmd: str, check_exit_code: bool | list[int] = True,
            env: dict[str, str] | None = None, timeout: int = 600) -> tuple[str, str]:
    """Run ``cmd`` (no shell); return (stdout, stderr) or raise DriverError."""
    from oslo_concurrency import processutils  # ~80 ms (oslo.utils): imported on first run

    merged = None if env is None else {**os.environ, **env}  # processutils replaces env
    started: list[subprocess.Popen[Any]] = []
    try:
        out, err = processutils.execute(*cmd, check_exit_code=check_exit_code,
                                        env_variables=merged, timeout=timeout,
                                        on_execute=started.append)
    except subprocess.TimeoutExpired as expired:
        # processutils leaves a timed-out child running: a command stuck on a backend that
        # stopped answering (qemu-img on a frozen NFS server) would hold its files and keep
        # going after the caller recorded the failure. Kill it and reap it (not waiting for
        # ever: a process in uninterruptible sleep on a hard NFS mount dies only when the
        # server answers).
        for child in started:
            child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
        raise exception.DriverError(
            f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} did not finish in {timeout} s (killed); "
            "its backend may have stopped answering",
            command=cmd[0], exit_code=None,
        ) from expired
    except processutils.ProcessExecutionError as failed:
        raise exception.DriverError(
            f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed (exit {failed.exit_code}): "
            f"{(failed.stderr or failed.stdout or '').strip()[:500]}",
            command=cmd[0], exit_code=failed.exit_code,
        ) from failed
    except OSError as missing:
        raise exception.DriverError(f"cannot run {cmd[0]}: {missing}", command=cmd[0]) from missing
    return str(out), str(err)
