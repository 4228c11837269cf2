"""Evaluate panel (ELL's eval_test): a list of labelled clips through the live view's models in
one of three modes (reset per clip / continuous / continuous + VAD), a running pass rate, the
confusion matrix, and the misclassified clips (click: play it; double-click: open it in the live
view). core.evaluate.passrate does the work on the job worker; core.vad.compare builds the
plain and VAD classifiers of the modes. The continuous modes play the clips in a shuffled order
(seed 0, as `kws eval`; untick "shuffled" for the list's order): a list sorted by word flatters a
model that carries its state from clip to clip; a word still said when the next clip starts counts
for the clip it began in (core.evaluate.passrate.attributed).

Its Calibrate tab (kwsgui.eval_calibrate) is `kws calibrate`: a DET curve of the live view's models
on a long stream of held-out clips and noise, and the chosen threshold stored in the classifier."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.evaluate.passrate import DECISIONS, ClipResult, attribution_text, evaluate_clips, play_order, read_list
from kwsgui.charts import HeatMap
from kwsgui.eval_calibrate import CalibrationTab
from kwsgui.jobs import JobContext
from kwsgui.panel import ClipPlayer, Panel
from kwsgui.widgets import NOTE_STYLE, PathField

MODES = {"reset": "reset per clip", "continuous": "continuous", "vad": "continuous + VAD"}


@dataclass(frozen=True)
class Running:
    """New clip results since the last report (the worker's PassRate is not shared)."""

    done: int
    total: int
    passed: int
    new: tuple[ClipResult, ...]


@dataclass(frozen=True)
class EvalReport:
    mode: str
    categories: tuple[str, ...]
    results: tuple[ClipResult, ...]
    confusion: np.ndarray  # (classes, classes + 1) read-only; the last column: no prediction
    skipped: tuple[str, ...]
    time_per_frame_s: float
    backend: str
    vad_source: str | None
    order: str  # how the clips were ordered (core.evaluate.passrate.play_order)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def rate(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0


def eval_job(models, list_file: str, mode: str, decision: str, limit: int, ctx: JobContext, *,
             shuffle: bool = True, seed: int = 0) -> EvalReport:
    from core.pipeline import KeywordSpotter
    from core.vad.compare import mode_graphs
    from core.vad.model import strip_vad

    clips, order = play_order(read_list(list_file)[: limit or None], continuous=mode != "reset", shuffle=shuffle,
                              seed=seed)
    source = None
    if mode == "vad":  # the model's own VAD, else ELL's defaults added
        path = None if models.featurizer_path == "built-in" else models.featurizer_path
        graphs = mode_graphs(models.classifier, models.featurizer, None, path)
        classifier, source = graphs.vad, graphs.source
        ctx.log(f"VAD: {source}")
    else:
        classifier = strip_vad(models.classifier)
    ctx.stage("compiling the models")
    spotter = KeywordSpotter(models.featurizer, classifier)
    how = "" if mode == "reset" else f"; {attribution_text('onset')}"
    ctx.log(f"{len(clips)} clips, {MODES[mode]}, {decision} frame, backend {spotter.backend}; clip order: {order}{how}")
    cats = list(models.labels)
    last = {"t": 0.0, "sent": 0}

    def progress(k: int, res) -> None:
        now = time.monotonic()
        if now - last["t"] >= 0.05 or k == len(clips):
            new = tuple(res.results[last["sent"]:])
            last["t"], last["sent"] = now, len(res.results)
            ctx.partial(Running(k, len(clips), res.passed, new))
            ctx.progress(k, len(clips), "clips")

    res = evaluate_clips(spotter, cats, clips, reset=mode == "reset", decision=decision, progress=progress,
                         should_stop=ctx.cancel.is_set)
    if last["sent"] < len(res.results):
        ctx.partial(Running(len(res.results), len(clips), res.passed, tuple(res.results[last["sent"]:])))
    conf = res.confusion()
    conf.setflags(write=False)
    return EvalReport(mode, tuple(cats), tuple(res.results), conf, tuple(res.skipped), res.time_per_frame_s,
                      spotter.backend, source, order)


class EvalPanel(CalibrationTab, Panel):
    title = "Evaluate"
    open_in_live = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.report: EvalReport | None = None
        self.results: list[ClipResult] = []
        self.player = ClipPlayer(self)
        self.player.failed.connect(lambda text: self.show_error(f"cannot play the clip: {text}"))
        self.list_file = PathField(settings, "eval/list", caption="List of labelled clips",
                                   filt="Lists (*.txt);;All files (*)",
                                   placeholder="testing_list.txt (wav paths; label = parent folder)")
        self.mode = QComboBox()
        for key, text in MODES.items():
            self.mode.addItem(text, key)
        self.mode.setCurrentIndex(max(0, self.mode.findData(str(settings.value("eval/mode", "reset")))))
        self.mode.currentIndexChanged.connect(lambda _i: self._mode_changed())
        self.shuffle = QCheckBox("shuffled")
        self.shuffle.setToolTip("Continuous modes: play the clips in a shuffled order (seed 0), not the list's: "
                                "a list sorted by word flatters a model that carries state from clip to clip")
        self.shuffle.setChecked(str(settings.value("eval/shuffle", "true")) == "true")
        self.decision = QComboBox()
        self.decision.addItems(DECISIONS)
        self.limit = QSpinBox()
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("all")
        self.run_button = QPushButton("▶  Evaluate")
        self.run_button.clicked.connect(lambda: self.evaluate())
        self.models_label = QLabel()
        self.models_label.setStyleSheet(NOTE_STYLE)
        form = QFormLayout()
        form.addRow("List", self.list_file)
        form.addRow("Models", self.models_label)
        row = QHBoxLayout()
        for label, w in (("Mode", self.mode), ("", self.shuffle), ("Decision", self.decision), ("Clips", self.limit)):
            if label:
                row.addWidget(QLabel(label))
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.run_button)
        self.rate_label = QLabel("pass rate –")
        self.rate_label.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.detail_label = QLabel()
        self.detail_label.setStyleSheet(NOTE_STYLE)
        self.detail_label.setWordWrap(True)  # a long line must not widen the left side
        self.wrong = QListWidget()
        self.wrong.setToolTip("click: play the clip · double-click: open it in the live view")
        self.wrong.itemClicked.connect(lambda item: self.play(item.data(Qt.UserRole)))
        self.wrong.itemDoubleClicked.connect(lambda item: self.open_in_live.emit(item.data(Qt.UserRole)))
        self.heat = HeatMap()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.rate_label)
        ll.addWidget(self.detail_label)
        ll.addWidget(QLabel("Misclassified clips (click to play)"))
        ll.addWidget(self.wrong, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.heat)
        split.setSizes([420, 700])
        rate_tab = QWidget()
        rl = QVBoxLayout(rate_tab)
        rl.addLayout(row)
        rl.addWidget(split, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(rate_tab, "Pass rate")
        self.tabs.addTab(self._calibration_tab(settings), "Calibrate (DET)")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.job_bar)
        if live is not None:
            live.models_changed.connect(lambda _m: self._show_models())
        self._show_models()
        self._mode_changed()

    def _mode_changed(self) -> None:
        self.shuffle.setEnabled(self.mode.currentData() != "reset")  # reset per clip: the order does not matter

    def _show_models(self) -> None:
        m = self.live.models if self.live is not None else None
        if m is None or m.classifier is None:
            self.models_label.setText("the live view has no classifier: load one there")
        else:
            vad = "with a VAD" if m.classifier.by_op("vad") else "no VAD (the VAD mode adds ELL's)"
            self.models_label.setText(f"{Path(m.classifier_path).name}, {m.n_classes} classes, {vad}")

    def set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.calib_button.setEnabled(not busy)
        self.store_button.setEnabled(not busy and self.calibration is not None)

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(self.mode.findData(mode))

    def evaluate(self) -> bool:
        m = self.live.models if self.live is not None else None
        if m is None or m.classifier is None:
            self.show_error("the live view has no classifier to evaluate")
            return False
        lf = self.list_file.text()
        if not lf:
            self.show_error("choose a list file")
            return False
        mode, decision, limit = str(self.mode.currentData()), self.decision.currentText(), self.limit.value()
        shuffle = self.shuffle.isChecked()
        self.remember("eval/mode", mode)
        self.remember("eval/shuffle", "true" if shuffle else "false")
        self.results, self.report = [], None
        self.wrong.clear()
        self.rate_label.setText("pass rate –")
        self.detail_label.clear()
        return self.run_job("Evaluate", lambda ctx: eval_job(m, lf, mode, decision, limit, ctx, shuffle=shuffle),
                            on_partial=self._running, on_result=self._done)

    def _running(self, r: Running) -> None:
        self.results += r.new
        for c in r.new:
            if not c.passed:
                got = c.predicted or "nothing"
                text = f"{c.expected} → {got} ({100 * c.probability:.0f}%)  {Path(c.path).name}"
                item = QListWidgetItem(text)
                item.setData(Qt.UserRole, c.path)
                item.setToolTip(c.path)
                self.wrong.addItem(item)
        rate = 100 * r.passed / len(self.results) if self.results else 0.0
        self.rate_label.setText(f"pass rate {rate:.2f} %  ({r.passed}/{len(self.results)})")

    def _done(self, r: EvalReport) -> None:
        self.report = r
        self.rate_label.setText(f"pass rate {100 * r.rate:.2f} %  ({r.passed}/{len(r.results)})")
        vad = f" · VAD: {r.vad_source}" if r.vad_source else ""
        skipped = f" · {len(r.skipped)} unreadable clips skipped" if r.skipped else ""
        order = f" · {r.order} · {attribution_text('onset')}" if r.mode != "reset" else ""
        self.detail_label.setText(f"{MODES[r.mode]}{order} · {r.backend} · {1e6 * r.time_per_frame_s:.0f} µs "
                                  f"per frame{vad}{skipped}")
        used = sorted({i for i, row in enumerate(r.confusion) if row.sum()} |
                      {j for j in range(len(r.categories)) if r.confusion[:, j].sum()})
        m = r.confusion[np.ix_(used, used + [len(r.categories)])]  # classes that occur, plus "none"
        self.heat.set_matrix(m, [r.categories[i] for i in used], [r.categories[i] for i in used] + ["–"])

    def play(self, path: str) -> None:
        self.clear_error()
        self.player.play(path)
        self.message.emit(f"Playing {Path(path).name}")

    def shutdown(self, timeout_ms: int = 60_000) -> None:
        self.player.stop()
        super().shutdown(timeout_ms)
