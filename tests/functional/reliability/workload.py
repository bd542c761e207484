"""A workload of API calls in threads that keeps going while a backend is killed under it,
recording what each call did."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from stackcore import exception

from .conftest import where_threads_are


@dataclass
class Outcome:
    op: str
    ok: bool
    detail: str  # the result, or "ErrorClass: message"
    error: BaseException | None = None


@dataclass
class Workload:
    """``threads`` threads each calling ``step(thread, iteration, record)`` until :meth:`stop`;
    ``record(op, fn, *args)`` runs one API call and records its outcome (an error is recorded,
    not raised)."""

    threads: int
    step: Callable[[int, int, Callable[..., object]], None]
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    #: calls running now
    in_flight: int = 0

    def record(self, op: str, fn: Callable[..., object], *args: object, **kwargs: object
               ) -> object:
        with self._lock:
            self.in_flight += 1
        try:
            result = fn(*args, **kwargs)
        except Exception as err:
            with self._lock:
                self.outcomes.append(Outcome(op, False, f"{type(err).__name__}: {err}", err))
            return None
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self.outcomes.append(Outcome(op, True, repr(result)[:200]))
        return result

    def _run(self, index: int) -> None:
        iteration = 0
        try:
            while not self._stop.is_set():
                self.step(index, iteration, self.record)
                iteration += 1
        except Exception:
            self.crashed.append(traceback.format_exc())

    def start(self) -> Workload:
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                          name=f"workload-{i}") for i in range(self.threads)]
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, ok: int, timeout: float) -> None:
        """Until at least ``ok`` calls succeeded (AssertionError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while sum(o.ok for o in self.outcomes) < ok:
            assert time.monotonic() < deadline, \
                f"the workload made fewer than {ok} calls in {timeout:g} s: {self.outcomes[-5:]}"
            assert not self.crashed, self.crashed[0]
            time.sleep(0.05)

    def stop(self, timeout: float) -> None:
        """Let every thread finish its current step (at most ``timeout`` s in all)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise AssertionError(f"workload threads still in a call {timeout:g} s after stop: "
                                 f"{alive}\n{where_threads_are()}")
        assert not self.crashed, self.crashed[0]

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def foreign_errors(self) -> list[str]:
        """Failures that are not stackcore errors (a raw driver or database exception reaching
        the caller is a defect: callers catch StackcoreError)."""
        return [f"{o.op}: {o.detail}" for o in self.failures()
                if not isinstance(o.error, exception.StackcoreError)]

    def summary(self) -> str:
        ok = sum(o.ok for o in self.outcomes)
        return f"{ok} calls succeeded, {len(self.outcomes) - ok} failed"
