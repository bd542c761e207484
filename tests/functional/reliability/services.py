"""stackcore's services and agents as processes of their own (their console scripts), for the
tests that kill them or the backends under them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> str:
    """An oslo.config file of ``{section: {option: value}}`` (lists joined with commas)."""
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in options.items():
            if isinstance(value, list | tuple):
                value = ",".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = ",".join(f"{k}:{v}" for k, v in value.items())
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class ServiceProcess:
    """``stackcore service NAME --config-file CONFIG`` (or an agent's console script), its
    output appended to ``log``."""

    def __init__(self, name: str, config: str, log: Path, command: list[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.config = config
        self.log = log
        self.command = command or [str(BIN / "stackcore"), "service", name]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_line: str | None = "running", timeout: float = 90) -> float:
        """Start it; with ``ready_line``, return once it printed a line containing it (the
        services print ``stackcore NAME service running`` once they serve). Seconds it took."""
        started = time.monotonic()
        with open(self.log, "a") as errors:
            errors.write(f"\n==== start {self.name} #{self.starts + 1}\n")
            errors.flush()
            self.proc = subprocess.Popen(
                [*self.command, "--config-file", self.config],
                stdout=subprocess.PIPE if ready_line else errors, stderr=errors, text=True,
                env=self.env, start_new_session=True)
        self.starts += 1
        if ready_line:
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            line = self.proc.stdout.readline() if ready else ""
            if ready_line not in line:
                self.kill()
                pytest.fail(f"{self.name} did not start within {timeout:g} s: {line!r}\n"
                            f"{self.log_tail()}", pytrace=False)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing of it runs on."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (the services end within 5 s), SIGKILL if it does not."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text()[-chars:]
        except OSError:
            return ""
