"""Progress of long operations: a live bar on a terminal, plain lines otherwise (logs, pipes,
CI), so that the same command is readable in both."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, TextIO


class Progress:
    """``with Progress(stream, "uploading image x", total=size) as p: p.update(done, state)``.

    ``total`` None means the amount of work is unknown (waiting for a state): the display is
    the elapsed time and the latest state. Plain mode writes one line per state change and,
    with a total, one per ``step`` percent, never one per update (an upload updates per
    chunk)."""

    def __init__(self, stream: TextIO, label: str, total: int | None = None,
                 tty: bool | None = None, step: int = 10, counts_bytes: bool = False) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        #: a bar for bytes even before the total is known (``--wait`` on a resource whose
        #: copy reports its progress only once it runs)
        self.counts_bytes = counts_bytes or total is not None
        self.tty = stream.isatty() if tty is None else tty
        self.step = step
        self.started = time.monotonic()
        self._state: str | None = None
        self._reported_pct = -1
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
            if self.counts_bytes:
                columns += [BarColumn(), DownloadColumn()]
            columns += [TextColumn("{task.fields[state]}"), TimeElapsedColumn()]
            self._rich = RichProgress(*columns, console=Console(file=self.stream),
                                      transient=False)
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total, state="")
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, completed: int | None = None, state: str | None = None,
               total: int | None = None) -> None:
        """Show ``completed`` bytes (of ``total``, when it becomes known) and the ``state``."""
        if total is not None and total != self.total:
            self.total = total
            self._reported_pct = -1
        if self._rich is not None:
            kwargs: dict[str, Any] = {}
            if total is not None:
                kwargs["total"] = total
            if completed is not None:
                kwargs["completed"] = completed
            if state is not None:
                kwargs["state"] = state
            self._rich.update(self._task, **kwargs)
            self._state = state if state is not None else self._state
            return
        changed = state is not None and state != self._state
        if state is not None:
            self._state = state
        pct = None
        if completed is not None and self.total:
            pct = min(100, completed * 100 // self.total)
            if pct // self.step > self._reported_pct // self.step or (
                    pct == 100 and self._reported_pct != 100):
                self._reported_pct = pct
                changed = True
        if changed:
            parts = [self.label]
            if pct is not None:
                parts.append(f"{pct}% ({completed}/{self.total} bytes)")
            if self._state:
                parts.append(self._state)
            parts.append(f"{self.elapsed():.1f}s")
            self.stream.write(f"{parts[0]}: {' '.join(parts[1:])}\n")
            self.stream.flush()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._rich is not None:
            self._rich.stop()


class CountingReader:
    """A binary file object that reports how many bytes were read from it (an upload's
    progress: the image API reads its data in chunks)."""

    def __init__(self, handle: Any, progress: Progress) -> None:
        self.handle = handle
        self.progress = progress
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self.handle.read(size)
        self.count += len(data)
        self.progress.update(self.count)
        return data
