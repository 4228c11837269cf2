"""Dataset panel: audio folders -> lists (caps, bad list) -> per-class counts; synthetic
keywords (espeak-ng, flite, festival, Piper); featurized training/validation/testing datasets
with progress, Stop and the skipped files. The jobs (kwsgui.dataset_task) are plain
compositions of core.data calls; the build runs in a child process (kwsgui.subproc), so
featurizing never competes with the GUI for the GIL."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.data.augment import AugmentConfig
from core.data.dataset import DatasetConfig, featurizer_info
from core.data.lists import ListsConfig
from core.errors import DataError
from kwsgui.charts import CountsChart
from kwsgui.dataset_task import BuildReport, ListsReport, build_job, lists_job, synth_job
from kwsgui.model_set import BUILTIN
from kwsgui.panel import Panel
from kwsgui.subproc import run_in_child
from kwsgui.widgets import NOTE_STYLE, PathField, boxed, split_panel, vertical_scroll


class DatasetPanel(Panel):
    title = "Dataset"
    dataset_built = pyqtSignal(str)  # the folder with training/validation/testing.npz

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.lists_report: ListsReport | None = None
        self.build_report: BuildReport | None = None
        s = settings

        self.folders = QListWidget()
        self.folders.setMaximumHeight(90)
        for f in (s.value("dataset/folders", []) or []):
            self.folders.addItem(str(f))
        add, remove = QPushButton("Add folder…"), QPushButton("Remove")
        add.clicked.connect(self._add_folder)
        remove.clicked.connect(self._remove_folder)
        self.lists_out = PathField(s, "dataset/lists_dir", mode="dir", caption="Where the lists go",
                                   placeholder="folder for training/validation/testing lists")
        self.max_files = QSpinBox()
        self.max_files.setRange(0, 100000)
        self.max_files.setSpecialValueText("all")
        self.max_files.setValue(int(s.value("dataset/max_files", 0)))
        self.bad_list = PathField(s, "dataset/bad_list", caption="Bad list",
                                  placeholder="optional: files to leave out")
        self.val_pct, self.test_pct = QDoubleSpinBox(), QDoubleSpinBox()
        for box, key in ((self.val_pct, "val_pct"), (self.test_pct, "test_pct")):
            box.setRange(0.0, 49.0)
            box.setSuffix(" %")
            box.setValue(float(s.value(f"dataset/{key}", 10.0)))
        self.background = QLineEdit(str(s.value("dataset/background", "")))
        self.background.setPlaceholderText("optional class 0, e.g. background_noise")
        self.lists_button = QPushButton("Make lists")
        self.lists_button.clicked.connect(self.make_lists)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folders, 1)
        col = QVBoxLayout()
        col.addWidget(add)
        col.addWidget(remove)
        col.addStretch(1)
        folder_row.addLayout(col)
        lf = QFormLayout()
        lf.addRow("Lists folder", self.lists_out)
        lf.addRow("Max files per word", self.max_files)
        lf.addRow("Bad list", self.bad_list)
        pct = QHBoxLayout()
        pct.addWidget(QLabel("validation"))
        pct.addWidget(self.val_pct)
        pct.addWidget(QLabel("testing"))
        pct.addWidget(self.test_pct)
        lf.addRow("Split (by speaker)", pct)
        lf.addRow("Background class", self.background)
        lists_box = boxed("1. Lists from audio folders (word/*.wav)", folder_row, lf, self.lists_button)

        self.words = QLineEdit(str(s.value("dataset/synth_words", "yes,no,seven")))
        self.per_word = QSpinBox()
        self.per_word.setRange(1, 10000)
        self.per_word.setValue(int(s.value("dataset/synth_per_word", 20)))
        self.synth_out = PathField(s, "dataset/synth_dir", mode="dir", caption="Synthesized words go to")
        self.synth_button = QPushButton("Synthesize")
        self.synth_button.clicked.connect(self.synthesize)
        self.engine_boxes = self._engine_boxes(s)
        engine_row = QHBoxLayout()
        for box in self.engine_boxes.values():
            engine_row.addWidget(box)
        engine_row.addStretch(1)
        sf = QFormLayout()
        sf.addRow("Words", self.words)
        sf.addRow("Engines", engine_row)
        sf.addRow("Clips per word", self.per_word)
        sf.addRow("Output folder", self.synth_out)
        synth_box = boxed("Synthetic keywords (optional)", sf, self.synth_button)

        self.window_frames, self.shift_frames = QSpinBox(), QSpinBox()
        self.bg_rows, self.jobs = QSpinBox(), QSpinBox()
        for box, key, lo, hi, default in ((self.window_frames, "window", 1, 1000, 40),
                                          (self.shift_frames, "shift", 1, 1000, 40),
                                          (self.bg_rows, "bg_rows", 0, 1_000_000, 0),
                                          (self.jobs, "jobs", 1, 64, 1)):
            box.setRange(lo, hi)
            box.setValue(int(s.value(f"dataset/{key}", default)))
        self.noise_dir = PathField(s, "dataset/noise_dir", mode="dir", caption="Noise recordings",
                                   placeholder="optional: _background_noise_ folder")
        self.noise_fraction = QDoubleSpinBox()
        self.noise_fraction.setRange(0.0, 1.0)
        self.noise_fraction.setSingleStep(0.1)
        self.noise_fraction.setValue(float(s.value("dataset/noise_fraction", 0.0)))
        self.dataset_out = PathField(s, "dataset/out_dir", mode="dir", caption="Datasets go to")
        self.featurizer_label = QLabel()
        self.featurizer_label.setStyleSheet(NOTE_STYLE)
        self.build_button = QPushButton("Build datasets")
        self.build_button.clicked.connect(self.build)
        grid = QGridLayout()
        fields = (("Window frames", self.window_frames), ("Shift frames", self.shift_frames),
                  ("Noise fraction", self.noise_fraction), ("Background rows", self.bg_rows),
                  ("Worker processes", self.jobs))
        for r, (label, w) in enumerate(fields):
            grid.addWidget(QLabel(label), r // 2, 2 * (r % 2))
            grid.addWidget(w, r // 2, 2 * (r % 2) + 1)
        bf = QFormLayout()
        bf.addRow("Noise folder", self.noise_dir)
        bf.addRow("Output folder", self.dataset_out)
        build_box = boxed("2. Featurized datasets (training / validation / testing .npz)",
                          self.featurizer_label, grid, bf, self.build_button)

        self.chart = CountsChart()
        self.chart_title = QLabel("Files per class")
        self.chart_title.setWordWrap(True)  # it names a folder: long paths wrap
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.skipped = QListWidget()
        self.skipped.setMaximumHeight(110)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.chart_title)
        rl.addWidget(self.chart, 1)
        rl.addWidget(self.summary)
        rl.addWidget(QLabel("Skipped files"))
        rl.addWidget(self.skipped)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        for w in (lists_box, synth_box, build_box):
            ll.addWidget(w)
        ll.addStretch(1)
        # the forms scroll (vertically) on a small screen
        split = split_panel(self, vertical_scroll(left), right, (560, 620))
        split.setStretchFactor(1, 1)
        if live is not None:
            live.models_changed.connect(lambda _m: self._show_featurizer())
        self._show_featurizer()

    # ------------------------------------------------------------------ helpers
    def set_busy(self, busy: bool) -> None:
        for b in (self.lists_button, self.synth_button, self.build_button):
            b.setEnabled(not busy)

    @staticmethod
    def _engine_boxes(s) -> dict[str, QCheckBox]:
        """One checkbox per speech engine; a missing one is disabled and says what to install. Only the
        cheap presence check runs here (voices are listed in the job)."""
        from core.data.speech import ENGINE_NAMES, engine

        chosen = s.value("dataset/synth_engines", None)
        chosen = set(chosen if isinstance(chosen, list) else [chosen] if chosen else ENGINE_NAMES)
        boxes = {}
        for name in ENGINE_NAMES:
            e = engine(name)
            box = QCheckBox(name)
            why = e.missing()
            box.setEnabled(why is None)
            box.setChecked(why is None and name in chosen)
            box.setToolTip(f"missing: {why}" if why else e.description)
            boxes[name] = box
        return boxes

    def chosen_engines(self) -> list[str]:
        return [n for n, b in self.engine_boxes.items() if b.isEnabled() and b.isChecked()]

    def _show_featurizer(self) -> None:
        m = self.live.models if self.live is not None else None
        name = "built-in" if m is None or m.featurizer_path == BUILTIN else Path(m.featurizer_path).name
        self.featurizer_label.setText(f"Featurizer: {name} (the live view's; load another there)")

    def folder_list(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    def add_folder(self, path: str | Path) -> None:
        path = str(path)
        if path not in self.folder_list():
            self.folders.addItem(path)
        self.remember("dataset/folders", self.folder_list())

    def _add_folder(self) -> None:
        from PyQt5.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Audio folder (word sub-folders)",
                                                str(self.setting("dirs/last", "")))
        if path:
            self.add_folder(path)

    def _remove_folder(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self.remember("dataset/folders", self.folder_list())

    def _save_settings(self) -> None:
        boxes = (("max_files", self.max_files), ("val_pct", self.val_pct), ("test_pct", self.test_pct),
                 ("window", self.window_frames), ("shift", self.shift_frames), ("bg_rows", self.bg_rows),
                 ("jobs", self.jobs), ("noise_fraction", self.noise_fraction),
                 ("synth_per_word", self.per_word))
        for key, box in boxes:
            self.remember(f"dataset/{key}", box.value())
        self.remember("dataset/background", self.background.text())
        self.remember("dataset/synth_words", self.words.text())
        self.remember("dataset/synth_engines", self.chosen_engines())

    # ------------------------------------------------------------------ jobs
    def make_lists(self) -> bool:
        self._save_settings()
        folders, out = self.folder_list(), self.lists_out.text()
        if not folders:
            self.show_error("add at least one audio folder (word sub-folders of wavs)")
            return False
        if not out:
            self.show_error("choose the lists folder")
            return False
        try:
            cfg = ListsConfig(max_files_per_dir=self.max_files.value() or None,
                              validation_percent=self.val_pct.value(), testing_percent=self.test_pct.value(),
                              bad_list=self.bad_list.text() or None,
                              background_class=self.background.text().strip() or None)
        except ValueError as e:
            self.show_error(str(e))
            return False
        return self.run_job("Make lists", lambda ctx: lists_job(folders, out, cfg, ctx),
                            on_result=self._lists_done)

    def _lists_done(self, r: ListsReport) -> None:
        self.lists_report = r
        self.chart_title.setText(f"Files per class ({len(r.categories)} classes) in {r.outdir}")
        self.chart.set_counts(r.counts)
        tot = {s: sum(c.values()) for s, c in r.counts.items()}
        extra = f"; {r.bad_removed} bad files left out" if r.bad_removed else ""
        caps = ", ".join(f"{w} {k}/{a}" for w, (k, a) in r.capped.items())
        capped = f"; capped: {caps}" if caps else ""
        self.summary.setText(f"{tot['training']} training, {tot['validation']} validation, "
                             f"{tot['testing']} testing files{extra}{capped}")
        if not self.dataset_out.text():
            self.dataset_out.set_path(r.outdir)

    def synthesize(self) -> bool:
        self._save_settings()
        words = [w.strip() for w in self.words.text().split(",") if w.strip()]
        out = self.synth_out.text()
        if not words or not out:
            self.show_error("give words (comma-separated) and an output folder")
            return False
        engines = self.chosen_engines()
        if not engines:
            self.show_error("choose at least one speech engine (missing ones say what to install)")
            return False
        per, jobs = self.per_word.value(), self.jobs.value()
        return self.run_job("Synthesize", lambda ctx: synth_job(words, out, per, max(2, jobs), ctx, engines),
                            on_result=lambda r: self._synth_done(out, r))

    def _synth_done(self, out: str, result) -> None:
        times = ", ".join(f"{n} {t.ms_per_utterance:.0f} ms" for n, t in result.timing.items())
        self.summary.setText(f"synthesized {len(result.written)} clips into {out}"
                             + (f"\nper clip: {times}" if times else ""))
        self.skipped.clear()
        for _, reason in result.skipped:
            self.skipped.addItem(reason)
        if result.written:
            self.add_folder(out)

    def build(self) -> bool:
        self._save_settings()
        lists_dir, out = self.lists_out.text(), self.dataset_out.text() or self.lists_out.text()
        if not lists_dir:
            self.show_error("make (or choose) the lists first")
            return False
        m = self.live.models if self.live is not None else None
        if m is None:
            from kwsgui.model_set import ModelSet

            m = ModelSet.builtin()
        try:
            path = None if m.featurizer_path == BUILTIN else m.featurizer_path
            fmeta = featurizer_info(m.featurizer, path)
            dcfg = DatasetConfig(window_frames=self.window_frames.value(),
                                 shift_frames=self.shift_frames.value(), background_rows=self.bg_rows.value())
            aug = AugmentConfig(noise_fraction=self.noise_fraction.value())
        except (ValueError, DataError) as e:
            self.show_error(str(e))
            return False
        graph, noise, jobs = m.featurizer, self.noise_dir.text() or None, self.jobs.value()
        self.skipped.clear()
        return self.run_job("Build datasets",
                            lambda ctx: run_in_child(build_job, (lists_dir, out, graph, fmeta, dcfg, aug, noise,
                                                                 jobs), ctx),
                            on_result=self._build_done)

    def _build_done(self, r: BuildReport) -> None:
        self.build_report = r
        self.chart_title.setText(f"Rows per class in {r.outdir}")
        self.chart.set_counts(r.counts, unit="rows")
        rows = ", ".join(f"{s} {sum(c.values())}" for s, c in r.counts.items())
        self.summary.setText(f"wrote {', '.join(Path(f).name for f in r.files)}: rows {rows}; "
                             f"{len(r.skipped)} files skipped")
        for path, reason in r.skipped:
            self.skipped.addItem(reason if path in reason else f"{path}: {reason}")
        self.dataset_built.emit(r.outdir)
