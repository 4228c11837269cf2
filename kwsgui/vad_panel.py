"""VAD tuning panel (ELL's vad_test, interactive): the seven parameters on sliders with numeric
boxes (plus when to reset), a clip loaded from a wav or recorded from the microphone, and plots
of its spectrogram, level with noise floor and thresholds, and the 0/1 VAD signal with the
resets, redrawn as a slider moves. Auto-tune searches the parameters on labelled clips
(core.vad.tune on the job worker); Apply puts the VAD into the live view's classifier; Save
writes the parameters (JSON) or the classifier with its VAD (.kwm).

The clip is featurized once on the worker; a slider change only reruns the tracker over the
cached levels (core.vad.analysis), which takes well under a millisecond per second of audio."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QStandardPaths, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.audio.formats import DIALOG_FILTER
from core.errors import KwsError
from core.features.vad import RESET_ON, reset_trigger
from core.vad.analysis import VadTrace, levels_of, signals_from_levels
from core.vad.params import PARAM_NAMES, VadParams, load_params, save_params
from core.vad.tune import BOUNDS, OBJECTIVES
from kwsgui.model_set import BUILTIN
from kwsgui.panel import Panel
from kwsgui.vad_plots import VadPlots
from kwsgui.vad_task import Clip, load_clip_job, record_job, tune_job
from kwsgui.widgets import NOTE_STYLE, PathField, SliderBox, boxed, split_panel, vertical_scroll


class VadPanel(Panel):
    title = "VAD"
    params_changed = pyqtSignal(object)  # VadParams

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.clip: Clip | None = None
        self.trace: VadTrace | None = None
        self.tune_result = None
        self._levels: np.ndarray | None = None
        self.trace_ms = 0.0
        saved = str(settings.value("vad/params", "") or "")
        try:
            import json

            start = VadParams.from_dict(json.loads(saved)) if saved else VadParams()
        except (ValueError, TypeError):
            start = VadParams()
        self.sliders: dict[str, SliderBox] = {}
        grid = QGridLayout()
        for i, name in enumerate(PARAM_NAMES):
            lo, hi = BOUNDS[name]
            box = SliderBox(lo, hi, getattr(start.vad, name), log=True)
            box.valueChanged.connect(self._params_edited)
            self.sliders[name] = box
            grid.addWidget(QLabel(name.replace("_", " ")), i, 0)
            grid.addWidget(box, i, 1)
        self.reset_on = QComboBox()
        self.reset_on.addItems(RESET_ON)
        self.reset_on.setCurrentText(start.reset.reset_on)
        self.hold = QSpinBox()
        self.hold.setRange(0, 10000)
        self.hold.setSuffix(" frames")
        self.hold.setValue(int(start.reset.hold_frames))
        self.reset_on.currentIndexChanged.connect(self._params_edited)
        self.hold.valueChanged.connect(self._params_edited)
        grid.addWidget(QLabel("reset on"), len(PARAM_NAMES), 0)
        row = QHBoxLayout()
        row.addWidget(self.reset_on)
        row.addWidget(QLabel("hangover"))
        row.addWidget(self.hold)
        grid.addLayout(row, len(PARAM_NAMES), 1)
        defaults = QPushButton("ELL defaults")
        defaults.clicked.connect(lambda: self.set_params(VadParams()))
        self.from_model = QPushButton("From the live classifier")
        self.from_model.clicked.connect(self.params_from_live)
        load = QPushButton("Load…")
        load.clicked.connect(lambda: self.load_params())
        prow = QHBoxLayout()
        for b in (defaults, self.from_model, load):
            prow.addWidget(b)
        params_box = boxed("Parameters", grid, prow)

        self.clip_path = PathField(settings, "vad/clip", caption="Clip", filt=DIALOG_FILTER)
        self.load_button = QPushButton("Load clip")
        self.load_button.clicked.connect(lambda: self.load_clip())
        self.record_seconds = QDoubleSpinBox()
        self.record_seconds.setRange(0.5, 120.0)
        self.record_seconds.setValue(5.0)
        self.record_seconds.setSuffix(" s")
        self.record_button = QPushButton("●  Record")
        self.record_button.clicked.connect(lambda: self.record())
        crow = QHBoxLayout()
        crow.addWidget(self.load_button)
        crow.addStretch(1)
        crow.addWidget(self.record_seconds)
        crow.addWidget(self.record_button)
        clip_box = boxed("Clip", self.clip_path, crow)

        self.tune_list = PathField(settings, "vad/tune_list", caption="Labelled clips",
                                   filt="Lists (*.txt);;All files (*)", placeholder="list of labelled clips")
        self.noise_dir = PathField(settings, "vad/noise_dir", mode="dir", caption="Noise",
                                   placeholder="optional background noise folder")
        self.trials = QSpinBox()
        self.trials.setRange(1, 100000)
        self.trials.setValue(int(settings.value("vad/trials", 200)))
        self.objective = QComboBox()
        self.objective.addItems(OBJECTIVES)
        self.tune_button = QPushButton("Auto-tune")
        self.tune_button.clicked.connect(lambda: self.auto_tune())
        tf = QFormLayout()
        tf.addRow("Clips", self.tune_list)
        tf.addRow("Noise", self.noise_dir)
        trow = QHBoxLayout()
        for label, w in (("trials", self.trials), ("objective", self.objective)):
            trow.addWidget(QLabel(label))
            trow.addWidget(w)
        trow.addStretch(1)
        trow.addWidget(self.tune_button)
        tf.addRow("", trow)
        self.tune_label = QLabel()
        self.tune_label.setWordWrap(True)
        self.tune_label.setStyleSheet(NOTE_STYLE)
        tune_box = boxed("Auto-tune", tf, self.tune_label)

        self.apply_button = QPushButton("Apply to the live view")
        self.apply_button.setToolTip("Add (or replace) this VAD in the live view's classifier")
        self.apply_button.clicked.connect(self.apply_to_live)
        self.save_button = QPushButton("Save parameters…")
        self.save_button.clicked.connect(lambda: self.save_params())
        self.save_model_button = QPushButton("Save classifier with VAD…")
        self.save_model_button.clicked.connect(lambda: self.save_classifier())
        arow = QHBoxLayout()
        for b in (self.apply_button, self.save_button, self.save_model_button):
            arow.addWidget(b)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        for w in (params_box, clip_box, tune_box):
            ll.addWidget(w)
        ll.addLayout(arow)
        ll.addStretch(1)
        scroll = vertical_scroll(left)  # the controls scroll (vertically) on a small screen
        self.plots = VadPlots()
        self.info = QLabel("load or record a clip")
        self.info.setStyleSheet(NOTE_STYLE)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.plots, 1)
        rl.addWidget(self.info)
        split_panel(self, scroll, right, (450, 800))
        if live is not None:  # Record follows the live view's microphone list
            live.source.changed.connect(lambda: self.set_busy(self.busy))

    def _no_microphone(self) -> bool:
        """The live view looked for microphones and found none."""
        return self.live is not None and self.live.source.mic_found is False

    # ------------------------------------------------------------------ plots
    def _show_clip(self) -> None:
        self.plots.show_features(self.clip.features, self.clip.frame_duration_s)
        self._levels = levels_of(self.clip.features)
        self.update_trace()

    def update_trace(self) -> None:
        """Rerun the tracker with the current parameters and redraw (GUI thread, cheap)."""
        if self.clip is None or self._levels is None:
            return
        try:
            params = self.params()
        except ValueError as e:
            self.show_error(str(e))
            return
        t0 = time.perf_counter()
        fd, lv = self.clip.frame_duration_s, self._levels
        floors = np.empty(len(lv))
        sig = signals_from_levels(lv, params.vad, fd, floors)
        trig = sig if params.reset.is_ell else reset_trigger(sig, params.reset)[0]
        self.trace = VadTrace(lv, floors, sig, np.asarray(trig, np.int8), fd, params)
        self.trace_ms = 1000 * (time.perf_counter() - t0)
        self.plots.show_trace(self.trace)
        self.info.setText(f"{Path(self.clip.path).name}: {len(lv)} frames · {int(sig.sum())} voiced · "
                          f"{len(self.trace.segments)} segment(s) · {len(self.trace.resets)} reset(s) · "
                          f"traced in {self.trace_ms:.2f} ms")

    # ------------------------------------------------------------------ parameters
    def params(self) -> VadParams:
        vals = {k: self.sliders[k].value() for k in PARAM_NAMES}
        return VadParams().with_values(**vals, reset_on=self.reset_on.currentText(), hold_frames=self.hold.value())

    def set_params(self, p: VadParams) -> None:
        for k in PARAM_NAMES:
            box = self.sliders[k]
            box.blockSignals(True)
            box.set_value(getattr(p.vad, k))
            box.blockSignals(False)
        for w in (self.reset_on, self.hold):
            w.blockSignals(True)
        self.reset_on.setCurrentText(p.reset.reset_on)
        self.hold.setValue(int(p.reset.hold_frames))
        for w in (self.reset_on, self.hold):
            w.blockSignals(False)
        self._params_edited()

    def _params_edited(self, *_args) -> None:
        import json

        try:
            p = self.params()
        except ValueError as e:
            self.show_error(str(e))
            return
        self.clear_error()
        self.remember("vad/params", json.dumps(p.to_dict()))
        self.update_trace()
        self.params_changed.emit(p)

    def params_from_live(self) -> bool:
        from core.vad.model import model_vad

        clf = self.live.models.classifier if self.live is not None else None
        found = model_vad(clf) if clf is not None else None
        if found is None:
            self.show_error("the live view's classifier has no VAD")
            return False
        self.set_params(found[0])
        return True

    def load_params(self, path: str | Path | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "VAD parameters", "", "JSON (*.json);;All files (*)")
            if not path:
                return False
        try:
            self.set_params(load_params(path))
        except (KwsError, ValueError) as e:
            self.show_error(str(e))
            return False
        return True

    def save_params(self, path: str | Path | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save VAD parameters", "vad.json", "JSON (*.json)")
            if not path:
                return False
        info = self.tune_result.summary() if self.tune_result is not None else None
        try:
            save_params(path, self.params(), info)  # atomic
        except (KwsError, ValueError, OSError) as e:
            self.show_error(str(e))
            return False
        self.message.emit(f"Saved {path}")
        return True

    def classifier_with_vad(self):
        from core.vad.model import add_vad, frame_timing

        m = self.live.models if self.live is not None else None
        if m is None or m.classifier is None:
            raise KwsError("the live view has no classifier to add the VAD to")
        path = None if m.featurizer_path == BUILTIN else m.featurizer_path  # an .ell keeps its rate inside
        fd, sr = frame_timing(m.classifier, m.featurizer, path)
        return add_vad(m.classifier, self.params(), fd, sr)

    def apply_to_live(self) -> bool:
        try:
            graph = self.classifier_with_vad()
        except (KwsError, ValueError) as e:
            self.show_error(f"cannot apply: {e}")
            return False
        name = Path(self.live.models.classifier_path or "classifier").name
        base = name.split(" + VAD")[0]
        return self.live.use_classifier_graph(graph, f"{base} + VAD")

    def save_classifier(self, path: str | Path | None = None) -> bool:
        from core.graph import modelfile

        try:
            graph = self.classifier_with_vad()
            if path is None:
                path, _ = QFileDialog.getSaveFileName(self, "Save classifier with VAD", "classifier_vad.kwm",
                                                      "kwsgui models (*.kwm)")
                if not path:
                    return False
            modelfile.save(graph, path)  # atomic
        except (KwsError, ValueError) as e:
            self.show_error(str(e))
            return False
        self.message.emit(f"Saved {path}")
        return True

    # ------------------------------------------------------------------ jobs
    def set_busy(self, busy: bool) -> None:
        for b in (self.load_button, self.tune_button):
            b.setEnabled(not busy)
        no_mic = self._no_microphone()
        self.record_button.setEnabled(not busy and not no_mic)
        self.record_button.setToolTip("No microphone found" if no_mic else "Record a clip from the microphone")

    def _models(self):
        from kwsgui.model_set import ModelSet

        return self.live.models if self.live is not None else ModelSet.builtin()

    def load_clip(self, path: str | Path | None = None) -> bool:
        if path is not None:
            self.clip_path.set_path(path)
        p = self.clip_path.text()
        if not p:
            self.show_error("choose a wav file")
            return False
        m = self._models()
        return self.run_job("Load clip", lambda ctx: load_clip_job(m, p, ctx), on_result=self._clip_loaded)

    def _clip_loaded(self, c: Clip) -> None:
        self.clip = c
        self._show_clip()

    def record(self, path: str | None = None) -> bool:
        if self._no_microphone():
            self.show_error("no microphone to record from")
            return False
        if path is None:
            base = Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)) / "recordings"
            path = str(base / time.strftime("vad-%Y%m%d-%H%M%S.wav"))
        m, seconds = self._models(), self.record_seconds.value()
        device = self.live.source.device() if self.live is not None else None
        self.clip_path.set_path(path)
        return self.run_job("Record", lambda ctx: record_job(m, seconds, path, device, ctx),
                            on_result=self._clip_loaded)

    def auto_tune(self) -> bool:
        lf = self.tune_list.text()
        if not lf:
            self.show_error("choose a list of labelled clips to tune on")
            return False
        try:
            start = self.params()
        except ValueError as e:
            self.show_error(str(e))
            return False
        m, noise, trials, obj = self._models(), self.noise_dir.text() or None, self.trials.value(), \
            self.objective.currentText()
        self.remember("vad/trials", trials)
        return self.run_job("Auto-tune", lambda ctx: tune_job(m, lf, noise, start, trials, obj, ctx),
                            on_result=self._tuned, on_log=lambda t: self.tune_label.setText(t))

    def _tuned(self, result) -> None:
        self.tune_result = result
        b, s = result.best.score, result.start.score

        def pct(score):
            return f"{100 * score.accuracy:.1f}%" if score.accuracy is not None else f"F1 {score.f1:.3f}"

        base = " · ".join(f"{k} {pct(v)}" for k, v in result.baselines.items())
        stopped = " (stopped early)" if result.cancelled else ""
        self.tune_label.setText(f"{len(result.trials)} trials{stopped}: {pct(s)} → {pct(b)} on {b.words} words"
                                + (f" · baselines: {base}" if base else ""))
        self.set_params(result.best.params)
