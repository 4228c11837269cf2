"""The base of every job panel (settings, an error banner, one job at a time with a progress
bar and Stop) and a clip player that plays a wav on its own job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QSettings, pyqtSignal
from PyQt5.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from kwsgui.jobs import Job, JobContext, JobProgress, JobSummary
from kwsgui.widgets import ErrorBanner


class JobBar(QWidget):
    """Progress bar, stage text and a Stop button for the panel's running job."""

    stop_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("idle")
        self.bar.setValue(0)
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.bar, 1)
        lay.addWidget(self.stop_button)

    def started(self, name: str) -> None:
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.bar.setFormat(f"{name}…")
        self.stop_button.setEnabled(True)

    def update_progress(self, p: JobProgress) -> None:
        if p.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * p.fraction))
            text = f"{p.text}  " if p.text else ""
            self.bar.setFormat(f"{text}{p.done}/{p.total}  (%p%)")
        else:
            self.bar.setRange(0, 0)
            self.bar.setFormat(p.text or "working…")

    def ended(self, summary: JobSummary) -> None:
        self.bar.setRange(0, 1000)
        self.stop_button.setEnabled(False)
        if summary.completed:
            self.bar.setValue(1000)
            self.bar.setFormat(f"{summary.name}: done in {summary.seconds:.1f} s")
        else:
            self.bar.setValue(0)
            self.bar.setFormat(f"{summary.name}: {'stopped' if summary.cancelled else 'failed'}")


class Panel(QWidget):
    """Base of every job panel: settings, an error banner, one job at a time with a JobBar.

    Subclasses call `run_job(name, fn, on_result=..., on_partial=...)` and override
    `set_busy(bool)` to enable/disable their buttons. A job's error is shown once in the banner
    (and on the status bar through `message`)."""

    message = pyqtSignal(str)  # one line for the status bar
    job_started = pyqtSignal(str)
    job_finished = pyqtSignal(object)  # JobSummary
    job_failed = pyqtSignal(str)

    title = "Panel"

    def __init__(self, parent: QWidget | None = None, *, settings: QSettings):
        super().__init__(parent)
        self.settings = settings
        self.error = ErrorBanner()
        self.job_bar = JobBar()
        self.job_bar.stop_requested.connect(self.stop_job)
        self.job: Job | None = None
        self._handlers: dict[str, Callable[[Any], None] | None] = {}

    # ------------------------------------------------------------------ errors
    def show_error(self, text: str) -> None:
        self.error.show_error(text)
        self.message.emit(text)

    def clear_error(self) -> None:
        self.error.clear_error()

    # ------------------------------------------------------------------ jobs
    @property
    def busy(self) -> bool:
        return self.job is not None

    def set_busy(self, busy: bool) -> None:
        """Enable or disable the panel's own buttons (override)."""

    def run_job(self, name: str, fn: Callable[[JobContext], Any], *,
                on_result: Callable[[Any], None] | None = None,
                on_partial: Callable[[Any], None] | None = None,
                on_log: Callable[[str], None] | None = None,
                on_finished: Callable[[JobSummary], None] | None = None) -> bool:
        if self.job is not None:
            self.show_error(f"{self.job.name} is still running: stop it first")
            return False
        self.clear_error()
        job = Job(name, fn)
        w = job.worker
        self._handlers = {"result": on_result, "partial": on_partial, "log": on_log, "finished": on_finished}
        w.progress.connect(self._job_progress)
        w.log.connect(self._job_log)
        w.partial.connect(self._job_partial)
        w.result.connect(self._job_result)
        w.failed.connect(self._job_failed)
        w.finished.connect(self._job_finished)
        self.job = job
        self.job_bar.started(name)
        self.set_busy(True)
        self.message.emit(f"{name}…")
        job.start()
        self.job_started.emit(name)
        return True

    def _current(self) -> bool:
        return self.job is not None and self.sender() is self.job.worker

    def _call(self, key: str, value: Any) -> None:
        fn = self._handlers.get(key)
        if fn is not None:
            try:
                fn(value)
            except Exception as e:  # a display bug must not leave the panel stuck
                self.show_error(f"{type(e).__name__}: {e}")

    def _job_progress(self, p: JobProgress) -> None:
        if self._current():
            self.job_bar.update_progress(p)

    def _job_log(self, text: str) -> None:
        if self._current():
            self._call("log", text)

    def _job_partial(self, value: Any) -> None:
        if self._current():
            self._call("partial", value)

    def _job_result(self, value: Any) -> None:
        if self._current():
            self._call("result", value)

    def _job_failed(self, text: str) -> None:
        if self._current():
            self.show_error(text)
            self.job_failed.emit(text)

    def _job_finished(self, summary: JobSummary) -> None:
        if not self._current():
            return
        job, self.job = self.job, None
        job.thread.wait(2000)  # the worker returned: the thread is quitting
        self.job_bar.ended(summary)
        self.set_busy(False)
        self._call("finished", summary)
        if summary.completed:
            self.message.emit(f"{summary.name}: done in {summary.seconds:.1f} s")
        elif summary.cancelled:
            self.message.emit(f"{summary.name}: stopped")
        self.job_finished.emit(summary)

    def stop_job(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.job_bar.bar.setFormat(f"{self.job.name}: stopping…")

    def shutdown(self, timeout_ms: int = 60_000) -> None:
        """Stop the job and wait for it (window closing): what it already wrote stays."""
        job, self.job = self.job, None
        if job is not None:
            job.join(timeout_ms)
            self.set_busy(False)

    # ------------------------------------------------------------------ settings
    def setting(self, key: str, default: Any = "") -> Any:
        v = self.settings.value(key, default)
        return default if v is None else v

    def remember(self, key: str, value: Any) -> None:
        self.settings.setValue(key, value)


def play_wav(path: str, ctx: JobContext) -> float:
    """Play a wav on the default output device, stoppable between blocks; returns its length in s."""
    from core.audio.speaker import Speaker
    from core.audio.wav import read_wav

    x, rate = read_wav(path)
    block = max(1, rate // 50)
    speaker = Speaker(rate)
    try:
        for i in range(0, len(x), block):
            ctx.check()
            speaker.write(x[i:i + block])
    finally:
        speaker.close()
    return len(x) / rate


class ClipPlayer(QObject):
    """Plays one clip at a time on its own job (a new clip stops the previous one)."""

    failed = pyqtSignal(str)
    finished = pyqtSignal(object)  # JobSummary

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.job: Job | None = None
        self.path: str | None = None

    def play(self, path: str | Path) -> None:
        self.stop()
        self.path = str(path)
        job = Job("Play", lambda ctx, p=str(path): play_wav(p, ctx))
        job.worker.failed.connect(self.failed)
        job.worker.finished.connect(self._done)
        self.job = job
        job.start()

    def _done(self, summary: JobSummary) -> None:
        if self.job is not None and self.sender() is self.job.worker:
            self.job.thread.wait(2000)
            self.job = None
        self.finished.emit(summary)

    def stop(self) -> None:
        job, self.job = self.job, None
        if job is not None:
            job.join(5000)
