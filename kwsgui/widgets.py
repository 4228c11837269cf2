"""Widgets the panels share: the panel base (error banner, job runner, settings), path fields,
a level meter with a clipping light, an LED, and a slider with a numeric box."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QRectF, QSettings, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QWidget,
)

from kwsgui.jobs import Job, JobContext, JobProgress, JobSummary

ERROR_STYLE = "color: #e04040; font-weight: bold;"
NOTE_STYLE = "color: #808080;"


class ErrorBanner(QLabel):
    """One red line of the panel's current error; hidden when there is none."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet(ERROR_STYLE)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.hide()

    def show_error(self, text: str) -> None:
        self.setText(text)
        self.show()

    def clear_error(self) -> None:
        self.clear()
        self.hide()


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


class PathField(QWidget):
    """A path line edit with a Browse button; remembers its value under `key` in settings."""

    changed = pyqtSignal(str)

    def __init__(self, settings: QSettings, key: str, *, mode: str = "open", caption: str = "",
                 filt: str = "All files (*)", default: str = "", placeholder: str = ""):
        super().__init__()
        if mode not in ("open", "save", "dir"):
            raise ValueError(f"mode must be open, save or dir, got {mode!r}")
        self.settings, self.key, self.mode, self.caption, self.filt = settings, key, mode, caption, filt
        self.edit = QLineEdit(str(settings.value(key, default) or default))
        self.edit.setPlaceholderText(placeholder)
        self.edit.editingFinished.connect(self._edited)
        self.button = QPushButton("Browse…")
        self.button.clicked.connect(self.browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(self.button)

    def text(self) -> str:
        return self.edit.text().strip()

    def path(self) -> Path | None:
        t = self.text()
        return Path(t) if t else None

    def set_path(self, path: str | Path) -> None:
        self.edit.setText(str(path))
        self._edited()

    def _edited(self) -> None:
        self.settings.setValue(self.key, self.text())
        self.changed.emit(self.text())

    def browse(self) -> None:
        start = self.text() or str(self.settings.value("dirs/last", "") or "")
        if self.mode == "dir":
            path = QFileDialog.getExistingDirectory(self, self.caption, start)
        elif self.mode == "save":
            path, _ = QFileDialog.getSaveFileName(self, self.caption, start, self.filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self.caption, start, self.filt)
        if path:
            self.settings.setValue("dirs/last", str(Path(path).parent if self.mode != "dir" else path))
            self.set_path(path)


class Led(QWidget):
    """A round light: on (colour) or off (dark)."""

    def __init__(self, colour: str = "#40d040", diameter: int = 14, tooltip: str = ""):
        super().__init__()
        self.colour, self.on = QColor(colour), False
        self.setFixedSize(diameter + 2, diameter + 2)
        self.setToolTip(tooltip)

    def set_on(self, on: bool) -> None:
        if bool(on) != self.on:
            self.on = bool(on)
            self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QColor(30, 30, 30))
        p.setBrush(self.colour if self.on else QColor(60, 60, 60))
        p.drawEllipse(QRectF(1, 1, self.width() - 2, self.height() - 2))


class LevelMeter(QWidget):
    """A horizontal input level bar in dBFS (-60 .. 0) with a peak-hold tick and a clip light."""

    FLOOR_DB = -60.0

    def __init__(self):
        super().__init__()
        self.level_db = self.FLOOR_DB
        self.peak_db = self.FLOOR_DB
        self.clipped = False
        self.setMinimumSize(120, 16)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("input level (peak, dBFS); the right end lights red when samples clip")

    def set_level(self, level_db: float, clipped: bool) -> None:
        lv = max(self.FLOOR_DB, min(0.0, level_db if math.isfinite(level_db) else self.FLOOR_DB))
        self.level_db = lv
        self.peak_db = max(lv, self.peak_db - 1.0)  # falls back 1 dB per update
        self.clipped = bool(clipped) or (self.clipped and lv > -1.0)
        self.update()

    def reset(self) -> None:
        self.level_db = self.peak_db = self.FLOOR_DB
        self.clipped = False
        self.update()

    def _x(self, db: float, width: float) -> float:
        return width * (db - self.FLOOR_DB) / -self.FLOOR_DB

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        w, h = self.width() - 14, self.height()
        p.fillRect(0, 0, w, h, QColor(40, 40, 40))
        x = self._x(self.level_db, w)
        for lo, hi, colour in ((-60.0, -12.0, "#40b040"), (-12.0, -3.0, "#d0c030"), (-3.0, 0.0, "#e04040")):
            a, b = self._x(lo, w), min(self._x(hi, w), x)
            if b > a:
                p.fillRect(QRectF(a, 2, b - a, h - 4), QColor(colour))
        px = self._x(self.peak_db, w)
        p.fillRect(QRectF(max(0.0, px - 1), 1, 2, h - 2), QColor(230, 230, 230))
        p.fillRect(w + 2, 1, 12, h - 2, QColor("#ff2020") if self.clipped else QColor(70, 30, 30))


class NumberBox(QDoubleSpinBox):
    """A spin box showing `digits` significant digits (1.2e-05, 3.5527), not fixed decimals;
    with `log`, the arrows step by a factor of 1.1 instead of a fixed amount."""

    def __init__(self, digits: int = 5, log: bool = False):
        super().__init__()
        self.digits, self.log = digits, log
        self.setDecimals(12)

    def textFromValue(self, v: float) -> str:
        return f"{v:.{self.digits}g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        from PyQt5.QtGui import QValidator

        try:
            float(text)
            return QValidator.Acceptable, text, pos
        except ValueError:
            return QValidator.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        if self.log and self.value() > 0:
            self.setValue(self.value() * 1.1**steps)
        else:
            super().stepBy(steps)


class SliderBox(QWidget):
    """A slider and a numeric box showing the same float; log-scaled for positive ranges. The
    value is kept exactly as set (the box only displays it rounded)."""

    valueChanged = pyqtSignal(float)
    STEPS = 1000

    def __init__(self, lo: float, hi: float, value: float, *, log: bool = False, digits: int = 5):
        super().__init__()
        if log and lo <= 0:
            raise ValueError(f"a log slider needs lo > 0, got {lo}")
        self.lo, self.hi, self.log = float(lo), float(hi), log
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, self.STEPS)
        self.box = NumberBox(digits, log)
        self.box.setRange(lo, hi)
        self.box.setSingleStep((hi - lo) / 100)
        self.box.setKeyboardTracking(False)
        self.box.setMinimumWidth(90)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.box)
        self._sync = False
        self._value = float(value)
        self.slider.valueChanged.connect(self._slid)
        self.box.valueChanged.connect(self._typed)
        self.set_value(value)

    def _to_pos(self, v: float) -> int:
        if self.log:
            t = (math.log(max(v, self.lo)) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return int(round(min(1.0, max(0.0, t)) * self.STEPS))

    def _from_pos(self, pos: int) -> float:
        t = pos / self.STEPS
        if self.log:
            return math.exp(math.log(self.lo) + t * (math.log(self.hi) - math.log(self.lo)))
        return self.lo + t * (self.hi - self.lo)

    def value(self) -> float:
        return self._value

    def set_value(self, v: float) -> None:
        self._sync = True
        try:
            self._value = float(v)
            self.box.setValue(v)
            self.slider.setValue(self._to_pos(v))
        finally:
            self._sync = False

    def _slid(self, pos: int) -> None:
        if self._sync:
            return
        self._sync = True
        try:
            self._value = self._from_pos(pos)
            self.box.setValue(self._value)
        finally:
            self._sync = False
        self.valueChanged.emit(self._value)

    def _typed(self, v: float) -> None:
        if self._sync:
            return
        self._sync = True
        try:
            self._value = float(v)
            self.slider.setValue(self._to_pos(v))
        finally:
            self._sync = False
        self.valueChanged.emit(self._value)


def boxed(title: str, *widgets_or_layouts) -> QWidget:
    """A QGroupBox with a vertical layout of the given widgets/layouts."""
    from PyQt5.QtWidgets import QGroupBox, QLayout, QVBoxLayout

    box = QGroupBox(title)
    lay = QVBoxLayout(box)
    for w in widgets_or_layouts:
        if isinstance(w, QLayout):
            lay.addLayout(w)
        else:
            lay.addWidget(w)
    return box


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
