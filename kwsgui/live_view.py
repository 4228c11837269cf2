"""The live panel: pick a source (wav, folder, microphone), run it through the models on a
worker thread, and watch the spectrogram, the class probabilities (bars and scrolling lines),
the input level, the VAD and the detections. Record the microphone to a wav.

Data flow: the worker publishes `Batch`es (at most ~33 per second); `_on_batch` only writes
them into ring buffers; one 60 Hz timer draws what arrived since the last tick (nothing when
nothing did), and skips the drawing while the panel is hidden.
Errors are shown once, in the panel's error line and on the status bar.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QApplication,
    QFileDialog,
    QWidget,
)

from core.audio.formats import DIALOG_FILTER
from core.audio.sources import WavSource
from core.errors import KwsError
from core.evaluate.calibrate import default_ignore
from core.pipeline import detector_settings, stored_detector
from kwsgui import APPLICATION, ORGANIZATION
from kwsgui.live_source import has_module
from kwsgui.live_ui import setup_ui
from kwsgui.model_set import ModelSet
from kwsgui.plots import ColumnRing
from kwsgui.workers import Batch, StreamControls, StreamInfo, StreamSummary, StreamThread, StreamWorker

DRAW_INTERVAL_MS = 16  # a 60 Hz timer that draws only when frames arrived (~31 per second)
LINES_WINDOW_S = 6.0
MODEL_FILTER = "Models (*.kwm *.ell *.onnx);;All files (*)"
__all__ = ["LiveView", "app_settings", "has_module"]


def app_settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


class LiveView(QWidget):
    title = "Live"
    message = pyqtSignal(str)  # one line for the status bar
    models_changed = pyqtSignal(object)  # ModelSet
    stream_started = pyqtSignal()
    stream_finished = pyqtSignal(object)  # StreamSummary
    stream_failed = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None, *, settings: QSettings | None = None,
                 models: ModelSet | None = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else app_settings()
        self.has_speaker = has_module("core.audio.speaker")
        self.controls = StreamControls(float(self.settings.value("live/threshold", 0.6)),
                                       int(self.settings.value("live/smoothing", 0)))
        self._models = models if models is not None else ModelSet.builtin()
        self._stream: StreamThread | None = None
        self._last: Batch | None = None
        self._info: StreamInfo | None = None
        self._frames = 0
        self.stats = {"max_level_db": -math.inf, "clipped": 0, "vad_frames": 0}  # of this stream
        self._draws: list[float] = []  # times of draws that showed new frames (frame-rate meter)
        self.prob_ring = ColumnRing(1, 1)
        self._error_about: str | None = None
        setup_ui(self)
        self.set_models(self._models)
        self._timer = QTimer(self)
        self._timer.setInterval(DRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._draw)
        self._timer.start()

    # ------------------------------------------------------------------ UI
    def _update_buttons(self) -> None:
        running = self.is_running
        mic = self.source.kind() == "mic"
        no_mic = mic and self.source.mic_found is False  # looked, found none
        self.play_button.setEnabled(not running and not no_mic)
        self.record_button.setEnabled(not running and mic and not no_mic)
        tip = "No microphone found (⟳ lists them again)" if no_mic else ""
        for b, normal in ((self.play_button, self._play_tip), (self.record_button, self._record_tip)):
            b.setToolTip(tip or normal)
        self.stop_button.setEnabled(running)
        self.backend_combo.setEnabled(not running)
        self.source.set_enabled_for(running)

    # ------------------------------------------------------------------ models
    @property
    def models(self) -> ModelSet:
        return self._models

    def set_models(self, models: ModelSet) -> None:
        if self._stream is not None:
            self.shutdown_stream()
        self._models = models
        self.spectrogram.configure(models.n_features, models.frame_duration_s)
        cap = max(1, math.ceil(LINES_WINDOW_S / models.frame_duration_s))
        self.prob_ring = ColumnRing(cap, max(1, models.n_classes))
        self.lines.clear_lines()
        self.lines_legend.clear()
        self.bars.set_labels(models.labels)
        if self.ignore_auto:
            self.ignore_edit.setText(", ".join(default_ignore(models.labels)))
        self.controls.set_ignore(self.ignored())
        has_clf = models.classifier is not None
        self.bars_box.setVisible(has_clf)
        self.lines_box.setVisible(has_clf)
        has_vad = has_clf and bool(models.classifier.by_op("vad"))
        self.vad_led.setEnabled(has_vad)
        self.vad_label.setText("VAD" if has_vad else "VAD (none)")
        self.vad_led.set_on(False)
        self.top_label.setText("–")
        self.model_label.setText(models.describe())
        if models.categories_mismatch:
            self.show_error(models.categories_mismatch)
        self._use_stored_detector(models)
        self.models_changed.emit(models)

    def _use_stored_detector(self, models: ModelSet) -> None:
        """A classifier that stores a threshold and smoothing (kws calibrate) sets the two controls;
        what the user sets afterwards wins (core.pipeline.detector_settings: user, model, default)."""
        try:
            if stored_detector(models.classifier) is None:
                return
            s = detector_settings(models.classifier)
        except KwsError as e:
            self.show_error(str(e))
            return
        self.threshold_spin.setValue(s.threshold)
        self.smoothing_spin.setValue(s.smoothing)
        self.log.appendPlainText(f"{s.source} (calibrated; change them here to override)")

    def _load(self, what: str, key: str | None, path: str | None, change: Callable[[], ModelSet]) -> bool:
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            models = change()
        except KwsError as e:
            self.show_error(f"Cannot load the {what}: {e}")
            return False
        except Exception as e:  # a model file that trips the loader is still only a bad file
            self.show_error(f"Cannot load the {what} {path}: {type(e).__name__}: {e}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.clear_error()
        if key is not None:
            path = str(Path(path).resolve()) if path else ""
            self.settings.setValue(f"paths/{key}", path)
            if path:
                self.settings.setValue("dirs/models", str(Path(path).parent))
        self.set_models(models)
        self.message.emit(f"Loaded the {what}" + (f" {Path(path).name}" if path else ""))
        return True

    def load_featurizer(self, path: str | Path) -> bool:
        return self._load("featurizer", "featurizer", str(path), lambda: self._models.with_featurizer(path))

    def use_builtin_featurizer(self) -> bool:
        return self._load("built-in featurizer", "featurizer", "", self._models.with_builtin_featurizer)

    def load_classifier(self, path: str | Path) -> bool:
        return self._load("classifier", "classifier", str(path), lambda: self._models.with_classifier(path))

    def use_classifier_graph(self, graph, label: str) -> bool:
        """A classifier from another panel (imported, trained, with a tuned VAD), not from a file."""
        return self._load("classifier", None, label, lambda: self._models.with_classifier_graph(graph, label))

    def remove_classifier(self) -> bool:
        return self._load("featurizer only", "classifier", "", self._models.without_classifier)

    def load_categories(self, path: str | Path) -> bool:
        return self._load("categories", "categories", str(path), lambda: self._models.with_categories(path))

    def _ask(self, title: str, dir_key: str, filt: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, title, str(self.settings.value(dir_key, "")), filt)
        return path or None

    def choose_featurizer(self) -> None:
        if path := self._ask("Open featurizer", "dirs/models", MODEL_FILTER):
            self.load_featurizer(path)

    def choose_classifier(self) -> None:
        if path := self._ask("Open classifier", "dirs/models", MODEL_FILTER):
            self.load_classifier(path)

    def choose_categories(self) -> None:
        if path := self._ask("Open categories", "dirs/models", "Text files (*.txt);;All files (*)"):
            self.load_categories(path)

    def choose_wav(self) -> None:
        if path := self._ask("Open audio file", "dirs/wav", DIALOG_FILTER):
            self.set_source_path(path)

    def set_source_path(self, path: str | Path) -> None:
        self.source.set_wav(path)

    # ------------------------------------------------------------------ errors
    def show_error(self, text: str, about: str = "models") -> None:
        """One error line; `about` ("models" or "source") says what it is about, so that a new
        source clears an error of the old one (and nothing else)."""
        self.error_label.show_error(text)
        self._error_about = about
        self.message.emit(text)

    def clear_error(self) -> None:
        self.error_label.clear_error()
        self._error_about = None

    def _source_changed(self) -> None:
        if self._error_about == "source":
            self.clear_error()
        self._update_buttons()

    # ------------------------------------------------------------------ streaming
    @property
    def is_running(self) -> bool:
        return self._stream is not None

    @property
    def backend(self) -> str:
        return str(self.backend_combo.currentData())

    def play(self, path: str | Path | None = None, *, realtime: bool = True, speed: float = 1.0,
             play_audio: bool | None = None) -> bool:
        """Start streaming a wav (the given one, the source's file) or the microphone; False (and an
        error shown) if it cannot start."""
        self.shutdown_stream()
        if path is None and self.source.kind() == "mic":
            return self._start_mic(None)
        wav = Path(path) if path is not None else self.source.current_file()
        if wav is None or not wav.is_file():
            self.show_error(f"{wav or 'no file chosen'}: no such audio file", "source")
            return False
        if path is not None and self.source.kind() != "folder":
            self.set_source_path(wav)
        sound = self.play_audio_check.isChecked() if play_audio is None else play_audio
        return self._start(lambda rate: WavSource(wav, rate), wav.name, live=False, realtime=realtime,
                           speed=speed, play_audio=sound and self.has_speaker)

    def choose_record(self) -> bool:
        if self.source.kind() != "mic" or self.source.mic_found is False:
            self.show_error("no microphone to record from", "source")  # asked for no file name
            return False
        start = str(self.settings.value("dirs/recordings", str(Path.home())))
        name = time.strftime("recording-%Y%m%d-%H%M%S.wav")
        path, _ = QFileDialog.getSaveFileName(self, "Record to", str(Path(start) / name),
                                              "Wave files (*.wav)")
        return self.record(path) if path else False

    def record(self, path: str | Path) -> bool:
        """Capture the microphone into `path` (written atomically when the stream stops)."""
        self.shutdown_stream()
        path = Path(path)
        if path.suffix.lower() != ".wav":
            path = path.with_suffix(".wav")
        self.settings.setValue("dirs/recordings", str(path.parent.resolve()))
        return self._start_mic(path)

    def _start_mic(self, record_path: Path | None) -> bool:
        try:
            from core.audio.microphone import MicrophoneSource
        except ImportError as e:
            self.show_error(f"microphone input is not available: {e}", "source")
            return False
        device, limit = self.source.device(), self.source.limit_s()

        def open_source(rate: int):
            return MicrophoneSource(rate, device=device, max_seconds=limit)

        name = "microphone" + (f" → {record_path.name}" if record_path else "")
        return self._start(open_source, name, live=True, realtime=True, speed=1.0, play_audio=False,
                           record_path=str(record_path) if record_path else None)

    def _start(self, open_source, name: str, *, live: bool, realtime: bool, speed: float, play_audio: bool,
               record_path: str | None = None) -> bool:
        worker = StreamWorker(self._models, open_source, controls=self.controls, realtime=realtime,
                              speed=speed, live=live, play_audio=play_audio, backend=self.backend,
                              record_path=record_path, source_name=name)
        worker.batch.connect(self._on_batch)
        worker.started.connect(self._on_started)
        worker.status.connect(self._on_status)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self.clear_error()
        self.status_label.clear()
        self.spectrogram.clear_image()
        self.prob_ring.clear()
        self.lines.clear_lines()
        self.lines_legend.clear()
        self.level_meter.reset()
        self.vad_led.set_on(False)
        self.bars.set_labels(self._models.labels)
        self.top_label.setText("–")
        self._last, self._info, self._frames, self._draws = None, None, 0, []
        self.stats = {"max_level_db": -math.inf, "clipped": 0, "vad_frames": 0}  # of this stream
        self.log.appendPlainText(f"— {name} —")
        self._stream = StreamThread(worker)
        self._stream.start()
        self._update_buttons()
        self.message.emit(f"Playing {name}")
        self.stream_started.emit()
        return True

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()

    def shutdown_stream(self, timeout_ms: int = 5000) -> None:
        """Stop the stream (if any) and join its thread; its late signals are then ignored."""
        stream, self._stream = self._stream, None
        if stream is not None and not stream.join(timeout_ms):
            self.show_error("the streaming thread did not stop in time", "source")
        self._update_buttons()

    def shutdown(self) -> None:
        self._timer.stop()
        self.shutdown_stream()

    def _current(self) -> bool:
        return self._stream is not None and self.sender() is self._stream.worker

    def _on_started(self, info: StreamInfo) -> None:
        if not self._current():
            return
        self._info = info
        why = f" (not compiled: {info.fallback_reason})" if info.fallback_reason else ""
        self.backend_label.setText(f"backend: {info.backend}")
        self.backend_label.setToolTip(f"{info.backend}{why}")

    def _on_batch(self, batch: Batch) -> None:
        if not self._current():
            return
        self.spectrogram.append(batch.features)
        if batch.probs is not None and len(batch.probs):
            self.bars.set_probs(batch.probs[-1])
            self.prob_ring.write(batch.probs)
        for d in batch.detections:
            t = (d.frame + 1) * batch.frame_duration_s
            self.log.appendPlainText(f"{t:7.2f} s  DETECTED {d.label} {int(100 * d.probability)}%")
        if batch.levels_db is not None and len(batch.levels_db):
            peak = float(batch.levels_db.max())
            self.level_meter.set_level(peak, batch.clipped > 0)
            self.stats["max_level_db"] = max(self.stats["max_level_db"], peak)
            self.stats["clipped"] += batch.clipped
        if batch.vad is not None and len(batch.vad):
            self.vad_led.set_on(batch.vad[-1] > 0)
            self.stats["vad_frames"] += int(batch.vad.sum())
        self._last = batch
        self._frames = batch.first_frame + batch.n

    def _on_status(self, text: str) -> None:
        if self._current():
            short = text if len(text) <= 40 else text[:38] + "…"  # a long note must not widen the window
            self.status_label.setText(short)
            self.status_label.setToolTip(text)
            self.message.emit(text)

    def _on_failed(self, text: str) -> None:
        if self._current():
            self.show_error(text, "source")
            self.stream_failed.emit(text)

    def _on_finished(self, summary: StreamSummary) -> None:
        if not self._current():
            return
        self.shutdown_stream()  # the worker has returned: this join is immediate
        self._draw(force=True)
        if summary.recorded:
            self.log.appendPlainText(f"recorded {summary.audio_s:.2f} s to {summary.recorded}")
        if summary.error is None:
            verb = "Stopped" if summary.cancelled else "Finished"
            self.message.emit(f"{verb}: {summary.frames} frames ({summary.audio_s:.2f} s), "
                              f"{summary.detections} detections, {summary.step_ms_mean:.2f} ms per frame")
        self.stream_finished.emit(summary)

    def _controls_changed(self) -> None:
        thr, smooth = self.threshold_spin.value(), self.smoothing_spin.value()
        self.controls.set(thr, smooth)
        self.bars.set_threshold(thr)
        self.lines.set_threshold(thr)
        self.settings.setValue("live/threshold", thr)
        self.settings.setValue("live/smoothing", smooth)

    def ignored(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.ignore_edit.text().split(",") if s.strip())

    def _ignore_changed(self) -> None:
        labels = self.ignored()
        known = self._models.labels if self._models.classifier is not None else labels
        unknown = [lb for lb in labels if lb not in known]
        if unknown:
            self.show_error(f"ignore: not a label of this classifier: {', '.join(unknown)}")
        self.controls.set_ignore(labels)
        self.ignore_auto = False
        self.settings.setValue("live/ignore", self.ignore_edit.text())

    def set_ignore(self, labels: str) -> None:
        self.ignore_edit.setText(labels)
        self._ignore_changed()

    # ------------------------------------------------------------------ drawing (GUI timer)
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        QTimer.singleShot(0, self._align_plots)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._align_plots)

    def _align_plots(self) -> None:
        """Line the time axis of the class lines up with the spectrogram's (which has a colour bar)."""
        self.spectrogram.getAxis("left").setWidth(48)
        self.lines.getAxis("left").setWidth(48)
        spec_vb, lines_vb = self.spectrogram.getViewBox(), self.lines.getViewBox()
        gap_spec = self.spectrogram.width() - spec_vb.sceneBoundingRect().right()
        gap_lines = self.lines.width() - lines_vb.sceneBoundingRect().right()
        right = self.lines.getAxis("right")
        have = right.width() if self.lines.getPlotItem().getAxis("right").isVisible() else 0
        want = max(0, int(round(have + gap_spec - gap_lines)))
        if want != have:
            self.lines.showAxis("right")
            right.setStyle(showValues=False)
            right.setPen(None)
            right.setWidth(want)

    @property
    def frame_rate(self) -> float:
        """Draws per second that showed new frames, over the last second."""
        now = time.monotonic()
        recent = [t for t in self._draws if now - t <= 1.0]
        return float(len(recent))

    def _draw(self, force: bool = False) -> None:
        if not (self.isVisible() or force):
            return
        fresh = self.spectrogram.pending
        if not (fresh or force or self.bars.dirty):
            return
        self.spectrogram.draw()
        has_clf = self._models.classifier is not None
        if has_clf and (self.bars_box.isVisible() or force):
            if self.bars.draw() and (top := self.bars.top()) is not None:
                self.top_label.setText(f"{top[0]}  {int(100 * top[1])}%")
            if fresh and self.prob_ring.total:
                labels = self._models.labels
                hidden = {labels.index(lb) for lb in self.ignored() if lb in labels}
                dt = self._models.frame_duration_s
                before = self.lines.shown
                self.lines.draw(self.prob_ring.latest(), self.prob_ring.total * dt, dt, labels, hidden)
                if self.lines.shown != before:
                    self.lines_legend.setText(self.lines.legend_html(labels))
        b = self._last
        if fresh:
            now = time.monotonic()
            self._draws = [t for t in self._draws if now - t <= 1.0] + [now]
        if b is not None:
            dt_ms = 1000 * b.frame_duration_s
            late = f" · {b.late_frames} late frames" if b.late_frames else ""
            self.timing_label.setText(
                f"processing: {b.step_ms_mean:.2f} ms per frame (max {b.step_ms_max:.2f}) · "
                f"{100 * b.step_ms_mean / dt_ms:.1f}% of real time{late}")
            self.position_label.setText(f"{self._frames * b.frame_duration_s:.2f} s")
            lv = self.level_meter.level_db
            self.level_label.setText(f"{lv:.0f} dBFS" + (" CLIP" if self.level_meter.clipped else ""))
            self.fps_label.setText(f"{self.frame_rate:.0f} fps")
