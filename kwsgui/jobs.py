"""The one generic worker for long jobs (superqt's `create_worker`, cut to what the panels need).

A job is a plain function `fn(ctx: JobContext) -> result` that calls core code. It runs in a
`JobWorker` (a QObject moved to its own QThread) and talks to the GUI only through signals:

    progress(JobProgress)   throttled at the source (at most every `min_interval_s`, plus the last)
    log(str)                one line for the panel's log
    partial(object)         an intermediate result (an epoch's numbers, a running pass rate)
    result(object)          the return value (whenever the function returns, also after a Stop it
                            honoured by returning early, as training does)
    failed(str)             the error, once: a KwsError/ValueError message, or type + message of a bug
    finished(JobSummary)    always last: completed / cancelled / failed, and the time it took

Payloads are immutable (frozen dataclasses, tuples, read-only arrays). Cancellation is
cooperative: `ctx.cancel` is a `threading.Event` the core function checks (`Cancelled` from
core.progress counts as a clean stop, not a failure). `Job` owns the worker and its thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from core.errors import KwsError
from core.progress import Cancelled
from kwsgui.subproc import BaseJobContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobProgress:
    done: int
    total: int  # 0: unknown (a busy indicator)
    text: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


@dataclass(frozen=True)
class JobSummary:
    name: str
    completed: bool
    cancelled: bool
    error: str | None
    seconds: float


class JobContext(BaseJobContext):
    """What a job function sees in the GUI process: messages become the worker's signals."""

    def __init__(self, worker: JobWorker, min_interval_s: float):
        super().__init__(worker.cancel, min_interval_s)
        self._worker = worker

    def _send(self, kind: str, value: Any) -> None:
        if kind == "progress":
            self._worker.progress.emit(JobProgress(*value))
        elif kind == "log":
            self._worker.log.emit(value)
        else:
            self._worker.partial.emit(value)


class JobWorker(QObject):
    progress = pyqtSignal(object)  # JobProgress
    log = pyqtSignal(str)
    partial = pyqtSignal(object)
    result = pyqtSignal(object)
    failed = pyqtSignal(str)
    finished = pyqtSignal(object)  # JobSummary, always last

    def __init__(self, name: str, fn: Callable[[JobContext], Any], *, min_interval_s: float = 0.05):
        super().__init__()
        self.name, self.fn = name, fn
        self.cancel = threading.Event()
        self.min_interval_s = min_interval_s

    @pyqtSlot()
    def run(self) -> None:
        t0 = time.monotonic()
        error, completed = None, False
        try:
            value = self.fn(JobContext(self, self.min_interval_s))
            # a job that returns after Stop (training saves what it has) still delivers its result
            completed = not self.cancel.is_set()
            if not completed:
                self.log.emit(f"{self.name}: stopped")
            self.result.emit(value)
        except Cancelled:
            self.log.emit(f"{self.name}: stopped")
        except (KwsError, ValueError, OSError) as e:
            error = str(e) or type(e).__name__
        except Exception as e:  # a bug: keep the app alive, leave the traceback in the log
            log.exception("job %s failed", self.name)
            error = f"{type(e).__name__}: {e}"
        finally:
            if error is not None:
                self.failed.emit(error)
            self.finished.emit(JobSummary(self.name, completed, self.cancel.is_set() and not completed,
                                          error, time.monotonic() - t0))
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()


class Job:
    """One worker on its own QThread: start, stop (cooperative), join. Keep a reference until the
    thread has finished (a QThread collected while running aborts the process)."""

    def __init__(self, name: str, fn: Callable[[JobContext], Any], **kw):
        self.name = name
        self.worker = JobWorker(name, fn, **kw)
        self.thread = QThread()
        self.thread.setObjectName(f"kwsgui-job-{name}")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.worker.cancel.set()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def join(self, timeout_ms: int = 30_000) -> bool:
        """Ask to stop and wait for the thread; True when it ended."""
        self.stop()
        return bool(self.thread.wait(timeout_ms))
