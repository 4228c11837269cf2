"""The live panel: pick a source, run it through the models on a worker thread, and watch the
spectrogram, the class probabilities and the detections.

Data flow: the worker publishes `Batch`es (at most ~33 per second); `_on_batch` only writes
them into the plots' buffers; one 30 Hz timer draws, and skips the drawing while the panel is
hidden. Errors are shown once, in the panel's error line and on the status bar.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QAction,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.audio.sources import WavSource
from core.errors import KwsError
from core.models import DEMO_WAV
from kwsgui import APPLICATION, ORGANIZATION
from kwsgui.model_set import ModelSet
from kwsgui.plots import ProbabilityBars, SpectrogramPlot
from kwsgui.workers import Batch, StreamControls, StreamSummary, StreamThread, StreamWorker

DRAW_INTERVAL_MS = 33
MODEL_FILTER = "Models (*.kwm *.ell *.onnx);;All files (*)"
WAV_FILTER = "Wave files (*.wav);;All files (*)"


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def app_settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


class LiveView(QWidget):
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
        self.has_microphone = has_module("core.audio.microphone")
        self.controls = StreamControls(float(self.settings.value("live/threshold", 0.6)),
                                       int(self.settings.value("live/smoothing", 0)))
        self._models = models if models is not None else ModelSet.builtin()
        self._stream: StreamThread | None = None
        self._last: Batch | None = None
        self._frames = 0
        self._build_ui()
        self.set_models(self._models)
        self._timer = QTimer(self)
        self._timer.setInterval(DRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._draw)
        self._timer.start()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        self.play_button = QPushButton("▶  Play")
        self.play_button.setToolTip("Run the source through the models")
        self.play_button.clicked.connect(lambda: self.play())
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.clicked.connect(self.stop)
        self.source_combo = QComboBox()
        self.source_combo.addItem("Wav file", "wav")
        if self.has_microphone:
            self.source_combo.addItem("Microphone", "mic")
        self.source_combo.currentIndexChanged.connect(self._update_buttons)
        self.path_edit = QLineEdit(str(self.settings.value("paths/wav", str(DEMO_WAV))))
        self.path_edit.setPlaceholderText("wav file to play")
        self.path_edit.editingFinished.connect(
            lambda: self.settings.setValue("paths/wav", self.path_edit.text()))
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self.choose_wav)
        self.play_audio_check = QCheckBox("Sound")
        self.play_audio_check.setToolTip("Also play the audio on the output device")
        self.play_audio_check.setEnabled(self.has_speaker)
        sound_on = self.settings.value("live/play_audio", "true") == "true"
        self.play_audio_check.setChecked(self.has_speaker and sound_on)
        self.play_audio_check.toggled.connect(
            lambda on: self.settings.setValue("live/play_audio", "true" if on else "false"))

        self.actions_ = {
            "featurizer": QAction("Open &featurizer…", self, triggered=self.choose_featurizer),
            "builtin": QAction("Use &built-in featurizer", self, triggered=self.use_builtin_featurizer),
            "classifier": QAction("Open &classifier…", self, triggered=self.choose_classifier),
            "no_classifier": QAction("&Remove classifier", self, triggered=self.remove_classifier),
            "categories": QAction("Open c&ategories…", self, triggered=self.choose_categories),
            "wav": QAction("Open &wav file…", self, triggered=self.choose_wav),
        }
        self.models_button = QPushButton("Models")
        self.models_button.setToolTip("Load a featurizer, classifier or categories file")
        menu = QMenu(self.models_button)
        for key in ("featurizer", "builtin", "classifier", "no_classifier", "categories"):
            menu.addAction(self.actions_[key])
        self.models_button.setMenu(menu)

        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 0.99)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setValue(self.controls.get()[1])
        self.threshold_spin.setToolTip("A class is detected when its (smoothed) probability is above this")
        self.smoothing_spin = QSpinBox()
        self.smoothing_spin.setRange(0, 50)
        self.smoothing_spin.setSuffix(" frames")
        self.smoothing_spin.setValue(self.controls.get()[2])
        self.smoothing_spin.setToolTip("Average the probabilities over the last N frames (0 = off)")
        self.threshold_spin.valueChanged.connect(self._controls_changed)
        self.smoothing_spin.valueChanged.connect(self._controls_changed)

        top = QHBoxLayout()
        for w in (self.play_button, self.stop_button, self.source_combo):
            top.addWidget(w)
        top.addWidget(self.path_edit, 1)
        for w in (self.browse_button, self.play_audio_check, self.models_button):
            top.addWidget(w)
        top.addSpacing(12)
        top.addWidget(QLabel("Threshold"))
        top.addWidget(self.threshold_spin)
        top.addWidget(QLabel("Smoothing"))
        top.addWidget(self.smoothing_spin)

        self.model_label = QLabel()
        self.model_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #e04040; font-weight: bold;")
        self.error_label.hide()

        self.spectrogram = SpectrogramPlot()
        spec_box = QGroupBox("Mel spectrogram")
        QVBoxLayout(spec_box).addWidget(self.spectrogram)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setFont(QFont("monospace"))
        log_box = QGroupBox("Detections")
        QVBoxLayout(log_box).addWidget(self.log)
        left = QSplitter(Qt.Vertical)
        left.addWidget(spec_box)
        left.addWidget(log_box)
        left.setSizes([500, 200])

        self.bars = ProbabilityBars()
        self.bars.set_threshold(self.threshold_spin.value())
        self.top_label = QLabel("–")
        self.top_label.setAlignment(Qt.AlignCenter)
        self.top_label.setStyleSheet("font-size: 15pt; font-weight: bold;")
        self.bars_box = QGroupBox("Class probabilities")
        bl = QVBoxLayout(self.bars_box)
        bl.addWidget(self.top_label)
        bl.addWidget(self.bars, 1)
        self.bars_box.setMinimumWidth(280)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(self.bars_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)

        self.timing_label = QLabel("processing: –")
        self.position_label = QLabel("0.00 s")
        self.status_label = QLabel()  # notes from the stream, e.g. no audio output
        self.status_label.setStyleSheet("color: #808080;")
        bottom = QHBoxLayout()
        bottom.addWidget(self.timing_label, 1)
        bottom.addWidget(self.status_label)
        bottom.addWidget(self.position_label)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.model_label)
        lay.addWidget(self.error_label)
        lay.addWidget(split, 1)
        lay.addLayout(bottom)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.is_running
        wav = self.source_combo.currentData() == "wav"
        self.play_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.source_combo.setEnabled(not running)
        self.path_edit.setEnabled(wav and not running)
        self.browse_button.setEnabled(wav and not running)

    # ------------------------------------------------------------------ models
    @property
    def models(self) -> ModelSet:
        return self._models

    def set_models(self, models: ModelSet) -> None:
        if self._stream is not None:
            self.shutdown_stream()
        self._models = models
        self.spectrogram.configure(models.n_features, models.frame_duration_s)
        self.bars.set_labels(models.labels)
        self.bars_box.setVisible(models.classifier is not None)
        self.top_label.setText("–")
        self.model_label.setText(models.describe())
        if models.categories_mismatch:
            self.show_error(models.categories_mismatch)
        self.models_changed.emit(models)

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
        if path := self._ask("Open wav file", "dirs/wav", WAV_FILTER):
            self.set_source_path(path)

    def set_source_path(self, path: str | Path) -> None:
        path = Path(path).resolve()
        self.path_edit.setText(str(path))
        self.source_combo.setCurrentIndex(self.source_combo.findData("wav"))
        self.settings.setValue("paths/wav", str(path))
        self.settings.setValue("dirs/wav", str(Path(path).parent))

    # ------------------------------------------------------------------ errors
    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()
        self.message.emit(text)

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    # ------------------------------------------------------------------ streaming
    @property
    def is_running(self) -> bool:
        return self._stream is not None

    def play(self, path: str | Path | None = None, *, realtime: bool = True, speed: float = 1.0,
             play_audio: bool | None = None) -> bool:
        """Start streaming the wav file (or the microphone); False (and an error shown) if not."""
        self.shutdown_stream()
        live = path is None and self.source_combo.currentData() == "mic"
        if live:
            try:
                from core.audio.microphone import MicrophoneSource
            except ImportError as e:
                self.show_error(f"microphone input is not available: {e}")
                return False
            open_source, name = MicrophoneSource, "microphone"
        else:
            wav = Path(path if path is not None else self.path_edit.text().strip())
            if not wav.is_file():
                self.show_error(f"{wav}: no such wav file")
                return False
            if path is not None:
                self.set_source_path(wav)
            open_source, name = (lambda rate: WavSource(wav, rate)), wav.name
        sound = self.play_audio_check.isChecked() if play_audio is None else play_audio
        worker = StreamWorker(self._models, open_source, controls=self.controls, realtime=realtime,
                              speed=speed, live=live, play_audio=sound and self.has_speaker)
        worker.batch.connect(self._on_batch)
        worker.status.connect(self._on_status)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self.clear_error()
        self.status_label.clear()
        self.spectrogram.clear_image()
        self.bars.set_labels(self._models.labels)
        self.top_label.setText("–")
        self._last, self._frames = None, 0
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
            self.show_error("the streaming thread did not stop in time")
        self._update_buttons()

    def shutdown(self) -> None:
        self._timer.stop()
        self.shutdown_stream()

    def _current(self) -> bool:
        return self._stream is not None and self.sender() is self._stream.worker

    def _on_batch(self, batch: Batch) -> None:
        if not self._current():
            return
        self.spectrogram.append(batch.features)
        if batch.probs is not None and len(batch.probs):
            self.bars.set_probs(batch.probs[-1])
        for d in batch.detections:
            t = (d.frame + 1) * batch.frame_duration_s
            self.log.appendPlainText(f"{t:7.2f} s  DETECTED {d.label} {int(100 * d.probability)}%")
        self._last = batch
        self._frames = batch.first_frame + batch.n

    def _on_status(self, text: str) -> None:
        if self._current():
            self.status_label.setText(text)
            self.message.emit(text)

    def _on_failed(self, text: str) -> None:
        if self._current():
            self.show_error(text)
            self.stream_failed.emit(text)

    def _on_finished(self, summary: StreamSummary) -> None:
        if not self._current():
            return
        self.shutdown_stream()  # the worker has returned: this join is immediate
        self._draw(force=True)
        if summary.error is None:
            verb = "Stopped" if summary.cancelled else "Finished"
            self.message.emit(f"{verb}: {summary.frames} frames ({summary.audio_s:.2f} s), "
                              f"{summary.detections} detections, {summary.step_ms_mean:.2f} ms per frame")
        self.stream_finished.emit(summary)

    def _controls_changed(self) -> None:
        thr, smooth = self.threshold_spin.value(), self.smoothing_spin.value()
        self.controls.set(thr, smooth)
        self.bars.set_threshold(thr)
        self.settings.setValue("live/threshold", thr)
        self.settings.setValue("live/smoothing", smooth)

    # ------------------------------------------------------------------ drawing (GUI timer)
    def _draw(self, force: bool = False) -> None:
        if not (self.isVisible() or force):
            return
        self.spectrogram.draw()
        if self.bars_box.isVisible() or force:
            if self.bars.draw() and (top := self.bars.top()) is not None:
                self.top_label.setText(f"{top[0]}  {int(100 * top[1])}%")
        b = self._last
        if b is not None:
            dt_ms = 1000 * b.frame_duration_s
            late = f" · {b.late_frames} late frames" if b.late_frames else ""
            self.timing_label.setText(
                f"processing: {b.step_ms_mean:.2f} ms per frame (max {b.step_ms_max:.2f}) · "
                f"{100 * b.step_ms_mean / dt_ms:.1f}% of real time{late}")
            self.position_label.setText(f"{self._frames * b.frame_duration_s:.2f} s")
