"""Several worker processes (:mod:`.worker`) running batches of API calls at the same time."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[3]


class Crash(AssertionError):
    """A worker raised something that is not a stackcore error."""


class WorkerPool:
    """``size`` workers, each with a Cloud built from ``spec`` (see :mod:`.worker`)."""

    def __init__(self, size: int, spec: dict[str, Any], start_timeout: float = 120) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Any] = []
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            for _ in range(size):
                log = tempfile.TemporaryFile("w+")
                self.logs.append(log)
                self.procs.append(subprocess.Popen(
                    [sys.executable, str(WORKER), json.dumps(spec)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT))
            self._read_all(["ready"] * size, start_timeout, parse=False)
        except BaseException:
            self.close()
            raise

    def run(self, batches: list[list[dict[str, Any]]], timeout: float = 300
            ) -> list[list[dict[str, Any]]]:
        """Send batch ``i`` to worker ``i`` (all at once); every worker's results. A crash in a
        worker fails the test with its traceback."""
        assert len(batches) == len(self.procs)
        for proc, batch in zip(self.procs, batches, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(batch) + "\n")
            proc.stdin.flush()
        results = self._read_all(batches, timeout, parse=True)
        for worker, batch_results in enumerate(results):
            for op, result in zip(batches[worker], batch_results, strict=True):
                if "crash" in result:
                    raise Crash(f"worker {worker}: {op} crashed:\n{result['crash']}")
        return results

    def _read_all(self, expected: list[Any], timeout: float, parse: bool) -> list[Any]:
        answers: dict[int, Any] = {}
        selector = selectors.DefaultSelector()
        for index, proc in enumerate(self.procs):
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, index)
        deadline = time.monotonic() + timeout
        try:
            while len(answers) < len(self.procs):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(set(range(len(self.procs))) - set(answers))
                    pytest.fail(f"workers {missing} did not answer within {timeout:g}s\n"
                                f"{self.log_tail(missing[0])}")
                for key, _ in selector.select(remaining):
                    index = key.data
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    if not line:
                        pytest.fail(f"worker {index} exited "
                                    f"({self.procs[index].wait()}):\n{self.log_tail(index)}")
                    if parse:
                        answers[index] = json.loads(line)
                    elif line.strip() != expected[index]:
                        pytest.fail(f"worker {index} said {line!r}:\n{self.log_tail(index)}")
                    else:
                        answers[index] = line.strip()
                    selector.unregister(key.fileobj)
        finally:
            selector.close()
        return [answers[i] for i in range(len(self.procs))]

    def log_tail(self, index: int) -> str:
        log = self.logs[index]
        log.flush()
        log.seek(0)
        return str(log.read()[-4000:])

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write("\n")
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
