"""Training panel: a form over every TrainConfig option, Start / Stop / Resume, live loss and
accuracy curves, learning rate and epoch time, a log; at the end the test accuracy and a
confusion-matrix heat map, and one click to use the trained model in the live view.

Training runs core.train.trainer.Trainer (kwsgui.train_task) in a child process driven by the
generic job worker (kwsgui.subproc), so torch never holds this process's GIL: `on_epoch` becomes
a partial result (the frozen EpochLog), `on_progress` the progress bar, Stop the Trainer's stop
Event. A stopped run still writes its model (the last finished epoch is in the checkpoint)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.train.config import (
    ARCHITECTURES,
    GATE_ACTIVATIONS,
    OPTIMIZERS,
    SCHEDULERS,
    TARGET_FRAMES,
    TEACHER_MODES,
    TrainConfig,
)
from kwsgui.charts import EpochCurves, HeatMap
from kwsgui.model_set import BUILTIN
from kwsgui.panel import Panel
from kwsgui.subproc import run_in_child
from kwsgui.train_task import Replay, TrainReport, train_job
from kwsgui.widgets import NOTE_STYLE, PathField, split_panel, vertical_scroll

CHOICES = {"architecture": ARCHITECTURES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS,
           "device": ("auto", "cpu", "cuda"), "teacher_mode": TEACHER_MODES, "gate_activation": GATE_ACTIVATIONS,
           "target_frame": TARGET_FRAMES}
# text options are model files: a path field with a file chooser
PATHS = {"init": "Model to start from (.kwm, .ell, .onnx)", "init_categories": "Its categories file",
         "teacher": "Teacher model (.ell, .onnx, .kwm)", "teacher_featurizer": "Teacher's own featurizer",
         "teacher_categories": "Teacher's categories file"}
# short labels inside the Teacher group (its title says whose they are)
LABELS = {"init": "start from", "init_categories": "its categories", "init_outputs": "its outputs too",
          "gate_activation": "gates",
          "teacher": "model", "teacher_featurizer": "featurizer", "teacher_categories": "categories",
          "teacher_mode": "labels", "teacher_vad": "keep its VAD", "distill_weight": "weight"}
GROUPS = {
    "Model": ("init", "init_categories", "init_outputs", "architecture", "num_layers", "hidden_size", "gate_activation",
              "tcn_channels", "tcn_kernel", "dropout", "normalize"),
    "Optimiser": ("epochs", "batch_size", "optimizer", "learning_rate", "weight_decay", "momentum"),
    "Schedule": ("scheduler", "lr_step_size", "lr_gamma", "lr_min"),
    "Regularisation": ("spec_augment", "label_smoothing", "context_prob", "context_rows", "target_frame",
                       "hold_frames", "release_weight", "quiet_background", "quiet_unknown"),
    "Teacher (distillation)": ("teacher", "teacher_featurizer", "teacher_categories", "teacher_mode",
                               "distill_weight", "temperature", "mix_prob", "teacher_vad"),
    "Run": ("device", "seed"),
}
INT_RANGES = {"num_layers": (1, 3), "hidden_size": (1, 4096), "tcn_channels": (1, 1024),
              "tcn_kernel": (2, 31), "epochs": (1, 10000), "batch_size": (1, 65536),
              "lr_step_size": (1, 10000), "context_rows": (1, 16), "hold_frames": (0, 100),
              "seed": (0, 2**31 - 1)}


class TrainPanel(Panel):
    title = "Training"
    use_in_live = pyqtSignal()  # the trained model was loaded into the live view

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.report: TrainReport | None = None
        self.fields: dict[str, QWidget] = {}
        self.dataset = PathField(settings, "train/dataset", mode="dir", caption="Dataset folder",
                                 placeholder="folder with training.npz (+ validation, testing)")
        self.outdir = PathField(settings, "train/outdir", mode="dir", caption="Output folder",
                                placeholder="where checkpoint.pt and model.kwm go")
        form_widget = QWidget()
        fl = QVBoxLayout(form_widget)
        saved = self._saved_config()
        grouped = {n for names in GROUPS.values() for n in names}
        other = tuple(f.name for f in fields(TrainConfig) if f.name not in grouped)  # options added later
        for group, names in (GROUPS | ({"Other": other} if other else {})).items():
            box = QGroupBox(group)
            grid = QGridLayout(box)
            row, col = 0, 0  # two options a row; a file path gets a row of its own
            for name in names:
                w = self._field(name, getattr(saved, name))
                self.fields[name] = w
                label = QLabel(LABELS.get(name, name.replace("_", " ")))
                label.setToolTip(name)
                if name in PATHS:
                    row, col = row + (col > 0), 0
                    grid.addWidget(label, row, 0)
                    grid.addWidget(w, row, 1, 1, 3)
                    row += 1
                    continue
                grid.addWidget(label, row, 2 * col)
                grid.addWidget(w, row, 2 * col + 1)
                row, col = (row + 1, 0) if col else (row, 1)
            fl.addWidget(box)
        fl.addStretch(1)
        scroll = vertical_scroll(form_widget, frame=True)

        self.start_button = QPushButton("▶  Start")
        self.start_button.clicked.connect(lambda: self.start())
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue from the output folder's checkpoint (up to the epochs set)")
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.stop_button = self.job_bar.stop_button
        self.use_button = QPushButton("Use in live view")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_in_live_view)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.resume_button, self.use_button):
            buttons.addWidget(b)
        paths = QFormLayout()
        paths.addRow("Dataset", self.dataset)
        paths.addRow("Output", self.outdir)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(paths)
        ll.addWidget(scroll, 1)
        ll.addLayout(buttons)

        self.curves = EpochCurves()
        self.epoch_label = QLabel("epoch –")
        self.lr_label = QLabel("lr –")
        self.time_label = QLabel("epoch time –")
        self.result_label = QLabel("test accuracy –")
        self.result_label.setStyleSheet("font-size: 13pt; font-weight: bold;")
        info = QHBoxLayout()
        for w in (self.epoch_label, self.lr_label, self.time_label):
            w.setStyleSheet(NOTE_STYLE)
            info.addWidget(w)
        info.addStretch(1)
        info.addWidget(self.result_label)
        self.heat = HeatMap()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.log.setFont(QFont("monospace", 9))
        bottom = QSplitter()
        bottom.addWidget(self.log)
        bottom.addWidget(self.heat)
        bottom.setSizes([400, 400])
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.curves)
        right.addWidget(bottom)
        right.setSizes([330, 330])
        rw = QWidget()
        rl = QVBoxLayout(rw)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(info)
        rl.addWidget(right, 1)
        split_panel(self, left, rw, (380, 800))

    # ------------------------------------------------------------------ form
    def _saved_config(self) -> TrainConfig:
        d = TrainConfig().to_dict()
        for name, default in d.items():
            v = self.settings.value(f"train/{name}")
            if v is None:
                continue
            try:
                d[name] = (v in (True, "true")) if isinstance(default, bool) else type(default)(v)
            except (TypeError, ValueError):
                pass
        try:
            return TrainConfig(**d)
        except ValueError:
            return TrainConfig()

    def _field(self, name: str, value) -> QWidget:
        if name in PATHS:
            w = PathField(self.settings, f"train/{name}", mode="open", caption=PATHS[name],
                          placeholder="none" if name == "teacher" else "only when needed")
            w.set_path(str(value))
            w.edit.setMinimumWidth(40)  # long paths scroll in the field; the form keeps its width
        elif name in CHOICES:
            w = QComboBox()
            w.addItems(CHOICES[name])
            w.setCurrentText(str(value))
        elif isinstance(value, bool):
            w = QCheckBox()
            w.setChecked(value)
        elif isinstance(value, int):
            w = QSpinBox()
            w.setRange(*INT_RANGES.get(name, (0, 10**6)))
            w.setValue(value)
        else:
            w = QLineEdit(f"{value:g}")
            w.setMaximumWidth(110)
        return w

    def config(self) -> TrainConfig:
        """The form as a TrainConfig; ValueError names a bad value."""
        d = {}
        for f in fields(TrainConfig):
            w = self.fields[f.name]
            if isinstance(w, PathField):
                d[f.name] = w.text()
            elif isinstance(w, QComboBox):
                d[f.name] = w.currentText()
            elif isinstance(w, QCheckBox):
                d[f.name] = w.isChecked()
            elif isinstance(w, QSpinBox):
                d[f.name] = w.value()
            else:
                try:
                    d[f.name] = float(w.text())
                except ValueError:
                    raise ValueError(f"training option {f.name}={w.text()!r}: not a number") from None
        return TrainConfig(**d)

    def set_option(self, name: str, value) -> None:
        w = self.fields[name]
        if isinstance(w, PathField):
            w.set_path(str(value))
        elif isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        else:
            w.setText(f"{value:g}")

    def set_busy(self, busy: bool) -> None:
        self.start_button.setEnabled(not busy)
        self.resume_button.setEnabled(not busy)
        for w in self.fields.values():
            w.setEnabled(not busy)
        if busy:
            self.use_button.setEnabled(False)

    # ------------------------------------------------------------------ run
    def start(self, resume: bool = False) -> bool:
        try:
            cfg = self.config()
        except ValueError as e:
            self.show_error(str(e))
            return False
        dataset, outdir = self.dataset.text(), self.outdir.text()
        if not dataset or not outdir:
            self.show_error("choose a dataset folder (or .npz) and an output folder")
            return False
        for name, value in cfg.to_dict().items():
            self.remember(f"train/{name}", value)
        self.curves.clear_points()
        self.heat.set_matrix([[0]], [""])
        self.result_label.setText("test accuracy –")
        self.log.appendPlainText(f"— {'resume' if resume else 'start'}: {cfg.epochs} epochs → {outdir} —")
        return self.run_job("Resume training" if resume else "Training",
                            lambda ctx: run_in_child(train_job, (dataset, outdir, cfg, resume), ctx),
                            on_partial=self._show_epochs, on_log=self.log.appendPlainText,
                            on_result=self._show_result)

    def _show_epochs(self, value) -> None:
        epochs = value.epochs if isinstance(value, Replay) else (value,)
        for e in epochs:
            self.curves.add_point(e.epoch, e.loss, e.train_accuracy, e.val_accuracy)
            self.epoch_label.setText(f"epoch {e.epoch}")
            self.lr_label.setText(f"lr {e.lr:.2e}")
            self.time_label.setText(f"epoch time {e.seconds:.1f} s ({e.rows_per_s:.0f} rows/s)")
            if not isinstance(value, Replay):
                self.log.appendPlainText(
                    f"epoch {e.epoch:3d}  loss {e.loss:.4f}  train {e.train_accuracy:.3f}  "
                    f"val {e.val_accuracy:.3f}  lr {e.lr:.2e}  {e.seconds:.1f} s")

    def _show_result(self, r: TrainReport) -> None:
        self.report = r
        if r.test_accuracy is not None:
            self.result_label.setText(f"test accuracy {100 * r.test_accuracy:.2f} %")
        else:
            self.result_label.setText("no test set")
        if r.confusion:
            self.heat.set_matrix(r.confusion, r.categories)
        note = " (stopped: the last finished epoch is saved; Resume continues)" if r.interrupted else ""
        self.log.appendPlainText(f"{r.epochs} epochs in {r.seconds:.1f} s{note}")
        for k, v in r.outputs.items():
            self.log.appendPlainText(f"wrote {k}: {v}")
        self.use_button.setEnabled("model" in r.outputs)

    def use_in_live_view(self) -> bool:
        """Load the trained model (and the featurizer its dataset was made with) into the live view."""
        r, live = self.report, self.live
        if r is None or live is None:
            return False
        feat = r.featurizer_file
        current = live.models.featurizer_path
        other = current == BUILTIN or (feat and Path(feat).resolve() != Path(current).resolve())
        if feat and Path(feat).is_file() and other:
            live.set_models(live.models.without_classifier())
            ok = live.load_featurizer(feat)
        elif not feat and current != BUILTIN:
            live.set_models(live.models.without_classifier())
            ok = live.use_builtin_featurizer()
        else:
            ok = True
        ok = ok and live.load_classifier(r.outputs["model"]) and live.load_categories(r.outputs["categories"])
        if not ok:
            self.show_error(f"the live view refused the model: {live.error_label.text()}")
            return False
        self.message.emit(f"Live view: classifier {r.outputs['model']}")
        self.use_in_live.emit()
        return True
