"""A tiny progress reporter for long CLI jobs, shaped as a plain callback.

    progress = Progress(len(files), "featurize")
    build_dataset(..., progress=progress)       # the core function calls progress(done, total)
    progress.close()

On a terminal it redraws one bar line (at most ~10 times a second); otherwise (a log file, CI)
it prints a line each time another 10% is done. Core code only ever sees a
`Callable[[int, int], None]`, so the GUI can pass its own callback instead (a Qt signal emit).
Cancellation is cooperative: core loops check a `threading.Event` and raise `Cancelled`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from core.errors import KwsError

ProgressCallback = Callable[[int, int], None]


class Cancelled(KwsError):
    """The user stopped a long job; nothing half-done was written."""


def check_cancel(cancel) -> None:
    """Raise `Cancelled` when `cancel` (a threading.Event or None) is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Callable `(done, total)` that draws a bar on stderr; `update(n)` counts up instead."""

    def __init__(self, total: int, label: str = "", *, stream: TextIO | None = None, width: int = 30,
                 min_interval_s: float = 0.1, tty: bool | None = None):
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval_s = min_interval_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.done = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._printed = -1  # `done` of the last line printed
        self._closed = False

    # the callback protocol used by core functions
    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(0, int(total))
        self.done = int(done)
        self._draw()

    def update(self, n: int = 1) -> None:
        self(self.done + n)

    def line(self) -> str:
        total, done = self.total, min(self.done, self.total) if self.total else self.done
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        head = f"{self.label}: " if self.label else ""
        if not total:
            return f"{head}{done} done, {elapsed:.1f} s"
        frac = done / total
        fill = int(round(frac * self.width))
        eta = f" ETA {_clock((total - done) / rate)}" if rate > 0 and done < total else ""
        bar = f"[{'#' * fill}{'.' * (self.width - fill)}] " if self.tty else ""
        return f"{head}{bar}{100 * frac:3.0f}% {done}/{total} ({rate:.1f}/s, {_clock(elapsed)}{eta})"

    def _draw(self, final: bool = False) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if self.tty:
            if final or now - self._last_draw >= self.min_interval_s or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
            return
        decile = (10 * self.done // self.total) if self.total else 0
        if final or decile > self._last_decile:
            self._last_decile, self._printed = decile, self.done
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (idempotent)."""
        if self._closed:
            return
        if self.tty:
            self._draw(final=True)
            self.stream.write("\n")
            self.stream.flush()
        elif self._printed != self.done:
            self._draw(final=True)
        self._closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
