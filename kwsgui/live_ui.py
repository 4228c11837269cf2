"""The live view's widgets and layout (Qt Designer's setupUi pattern): `setup_ui(view)` creates
every control, plot and label as an attribute of the view and lays them out; the behaviour
stays in kwsgui.live_view."""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QAction,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
)

from core.pipeline import BACKENDS
from kwsgui.charts import TopClassLines
from kwsgui.live_source import SourceBar
from kwsgui.plots import ProbabilityBars, SpectrogramPlot
from kwsgui.widgets import NOTE_STYLE, ErrorBanner, Led, LevelMeter


def setup_ui(view) -> None:
    view.source = SourceBar(view.settings)
    view.source.changed.connect(view._source_changed)
    view.source.file_chosen.connect(lambda p: view.play(p) if not view.is_running else None)
    view.source_combo, view.path_edit, view.browse_button = (view.source.combo, view.source.path_edit,
                                                             view.source.browse_button)
    view.play_button = QPushButton("▶  Play")
    view.play_button.setToolTip("Run the source through the models")
    view.play_button.clicked.connect(lambda: view.play())
    view.record_button = QPushButton("●  Record")
    view.record_button.setToolTip("Record the microphone to a wav file (detecting as it goes)")
    view.record_button.clicked.connect(lambda: view.choose_record())
    view._play_tip, view._record_tip = view.play_button.toolTip(), view.record_button.toolTip()
    view.stop_button = QPushButton("■  Stop")
    view.stop_button.clicked.connect(view.stop)
    view.play_audio_check = QCheckBox("Sound")
    view.play_audio_check.setToolTip("Also play the audio on the output device")
    view.play_audio_check.setEnabled(view.has_speaker)
    sound_on = view.settings.value("live/play_audio", "true") == "true"
    view.play_audio_check.setChecked(view.has_speaker and sound_on)
    view.play_audio_check.toggled.connect(
        lambda on: view.settings.setValue("live/play_audio", "true" if on else "false"))

    view.actions_ = {
        "featurizer": QAction("Open &featurizer…", view, triggered=view.choose_featurizer),
        "builtin": QAction("Use &built-in featurizer", view, triggered=view.use_builtin_featurizer),
        "classifier": QAction("Open &classifier…", view, triggered=view.choose_classifier),
        "no_classifier": QAction("&Remove classifier", view, triggered=view.remove_classifier),
        "categories": QAction("Open c&ategories…", view, triggered=view.choose_categories),
        "wav": QAction("Open &audio file…", view, triggered=view.choose_wav),
    }
    view.models_button = QPushButton("Models")
    view.models_button.setToolTip("Load a featurizer, classifier or categories file")
    menu = QMenu(view.models_button)
    for key in ("featurizer", "builtin", "classifier", "no_classifier", "categories"):
        menu.addAction(view.actions_[key])
    view.models_button.setMenu(menu)
    view.backend_combo = QComboBox()
    for b in BACKENDS:
        view.backend_combo.addItem(b, b)
    view.backend_combo.setToolTip("auto: native code when the compiler supports the models")
    view.backend_combo.setCurrentIndex(max(0, view.backend_combo.findData(
        str(view.settings.value("live/backend", "auto")))))
    view.backend_combo.currentIndexChanged.connect(
        lambda: view.settings.setValue("live/backend", view.backend_combo.currentData()))

    view.threshold_spin = QDoubleSpinBox()
    view.threshold_spin.setRange(0.0, 0.999)  # kws calibrate may store 0.995 or 0.998
    view.threshold_spin.setSingleStep(0.05)
    view.threshold_spin.setDecimals(3)
    view.threshold_spin.setValue(view.controls.get()[1])
    view.threshold_spin.setToolTip("A class is detected when its (smoothed) probability is above this")
    view.smoothing_spin = QSpinBox()
    view.smoothing_spin.setRange(0, 50)
    view.smoothing_spin.setSuffix(" frames")
    view.smoothing_spin.setValue(view.controls.get()[2])
    view.smoothing_spin.setToolTip("Average the probabilities over the last N frames (0 = off)")
    view.threshold_spin.valueChanged.connect(view._controls_changed)
    view.smoothing_spin.valueChanged.connect(view._controls_changed)
    view.ignore_edit = QLineEdit(str(view.settings.value("live/ignore", "")))
    # until the user sets the field: each model's classes that are no keyword (background, unknown)
    view.ignore_auto = not view.settings.contains("live/ignore")
    view.ignore_edit.setPlaceholderText("labels to ignore, e.g. background_noise")
    view.ignore_edit.setToolTip("Comma-separated labels never reported as detections nor drawn as lines")
    view.ignore_edit.editingFinished.connect(view._ignore_changed)

    transport = QHBoxLayout()
    for w in (view.play_button, view.record_button, view.stop_button, view.play_audio_check,
              view.models_button):
        transport.addWidget(w)
    transport.addWidget(QLabel("Backend"))
    transport.addWidget(view.backend_combo)
    transport.addStretch(1)

    view.model_label = QLabel()
    view.model_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    view.model_label.setStyleSheet(NOTE_STYLE)
    view.model_label.setWordWrap(True)
    view.error_label = ErrorBanner()

    view.spectrogram = SpectrogramPlot()
    spec_box = QGroupBox("Mel spectrogram")
    QVBoxLayout(spec_box).addWidget(view.spectrogram)
    view.lines = TopClassLines()
    view.lines_legend = QLabel()
    view.lines_legend.setTextFormat(Qt.RichText)
    view.lines_box = QGroupBox("Top classes over time")
    ll = QVBoxLayout(view.lines_box)
    ll.addWidget(view.lines_legend)
    ll.addWidget(view.lines, 1)
    view.log = QPlainTextEdit()
    view.log.setReadOnly(True)
    view.log.setMaximumBlockCount(2000)
    view.log.setFont(QFont("monospace"))
    log_box = QGroupBox("Detections")
    QVBoxLayout(log_box).addWidget(view.log)
    left = QSplitter(Qt.Vertical)
    for w in (spec_box, view.lines_box, log_box):
        left.addWidget(w)
    left.setSizes([420, 200, 130])

    view.bars = ProbabilityBars()
    view.bars.set_threshold(view.threshold_spin.value())
    view.lines.set_threshold(view.threshold_spin.value())
    view.top_label = QLabel("–")
    view.top_label.setAlignment(Qt.AlignCenter)
    view.top_label.setStyleSheet("font-size: 15pt; font-weight: bold;")
    view.bars_box = QGroupBox("Class probabilities")
    bl = QVBoxLayout(view.bars_box)
    bl.addWidget(view.top_label)
    bl.addWidget(view.bars, 1)
    detect = QFormLayout()  # detection settings beside what they act on
    detect.addRow("Threshold", view.threshold_spin)
    detect.addRow("Smoothing", view.smoothing_spin)
    detect.addRow("Ignore", view.ignore_edit)
    bl.addLayout(detect)
    view.bars_box.setMinimumWidth(280)
    split = QSplitter(Qt.Horizontal)
    split.addWidget(left)
    split.addWidget(view.bars_box)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, 1)

    view.level_meter = LevelMeter()
    view.level_label = QLabel("– dBFS")
    view.level_label.setMinimumWidth(80)
    view.vad_led = Led("#40d040", tooltip="voice activity (the classifier's VAD node)")
    view.vad_label = QLabel("VAD")
    view.backend_label = QLabel("backend: –")
    view.fps_label = QLabel("– fps")
    view.timing_label = QLabel("processing: –")
    view.position_label = QLabel("0.00 s")
    view.status_label = QLabel()  # notes from the stream, e.g. no audio output
    view.status_label.setStyleSheet(NOTE_STYLE)
    for label in (view.timing_label, view.status_label):  # long texts are clipped, not widening the window
        label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    bottom = QHBoxLayout()
    bottom.addWidget(QLabel("Input"))
    bottom.addWidget(view.level_meter, 1)
    bottom.addWidget(view.level_label)
    bottom.addWidget(view.vad_led)
    bottom.addWidget(view.vad_label)
    bottom.addSpacing(8)
    bottom.addWidget(view.timing_label, 3)
    bottom.addWidget(view.status_label, 2)
    for w in (view.backend_label, view.fps_label, view.position_label):
        bottom.addWidget(w)

    lay = QVBoxLayout(view)
    lay.addWidget(view.source)
    lay.addLayout(transport)
    lay.addWidget(view.model_label)
    lay.addWidget(view.error_label)
    lay.addWidget(split, 1)
    lay.addLayout(bottom)
    view._update_buttons()
