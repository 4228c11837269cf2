"""Compile / export panel: the live view's featurizer + classifier to native code for a target
(host, Raspberry Pi presets, or a custom triple/cpu/features), exported as a folder to build on
the device; the files it wrote; Verify (build, run the demo on a clip natively or under qemu,
compare the detections with the host) and Benchmark (per-frame times) on the job worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.audio.formats import DIALOG_FILTER
from core.compiler.targets import Target, preset_names, resolve_target
from core.errors import CompileError
from core.models import DEMO_WAV
from kwsgui.jobs import JobContext
from kwsgui.panel import Panel
from kwsgui.widgets import NOTE_STYLE, ElidedLabel, PathField, split_panel


@dataclass(frozen=True)
class Compiled:
    outdir: str
    files: tuple[str, ...]
    target: Target
    module_name: str
    demo: bool
    seconds: float


def compile_job(graphs: list, outdir: str, target: Target, name: str, labels: list[str] | None,
                sources: list[str], ctx: JobContext) -> Compiled:
    import time

    from core.compiler.export import export

    t0 = time.perf_counter()
    ctx.stage(f"lowering and compiling for {target.name} ({target.triple}, {target.cpu})", 0, 2)
    result = export(graphs, outdir, target=target, module_name=name, categories=labels, sources=sources)
    ctx.progress(2, 2, "written")
    for p in result.files:
        ctx.log(f"wrote {p}")
    return Compiled(str(result.outdir), tuple(str(p) for p in result.files), result.target,
                    result.module_name, result.demo, time.perf_counter() - t0)


class CompilePanel(Panel):
    title = "Compile"

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.compiled: Compiled | None = None
        self.verification = None
        self.bench_rows: list = []
        self.target_combo = QComboBox()
        for n in preset_names():
            self.target_combo.addItem(n, n)
        self.target_combo.addItem("custom", "custom")
        saved = str(settings.value("compile/target", "host"))
        self.target_combo.setCurrentIndex(max(0, self.target_combo.findData(saved)))
        self.triple, self.cpu, self.features = (QLineEdit(str(settings.value(f"compile/{k}", ""))) for k in
                                                ("triple", "cpu", "features"))
        self.triple.setPlaceholderText("e.g. armv7-unknown-linux-gnueabihf")
        self.cpu.setPlaceholderText("e.g. cortex-a72")
        self.features.setPlaceholderText("e.g. +neon,+vfp4")
        self.target_combo.currentIndexChanged.connect(self._target_changed)
        self.module = QLineEdit(str(settings.value("compile/module", "kws")))
        self.outdir = PathField(settings, "compile/outdir", mode="dir", caption="Output folder",
                                placeholder="folder for the exported model")
        self.clip = PathField(settings, "compile/clip", caption="Clip to verify with", default=str(DEMO_WAV),
                              filt=DIALOG_FILTER)
        self.models_label = QLabel()
        self.models_label.setStyleSheet(NOTE_STYLE)
        self.target_label = ElidedLabel(elide=Qt.ElideRight)  # one line whatever the target: no row moves
        self.target_label.setStyleSheet(NOTE_STYLE)
        self.models_label.setWordWrap(True)
        self.compile_button = QPushButton("⚙  Compile")
        self.compile_button.clicked.connect(lambda: self.compile())
        self.verify_button = QPushButton("✔  Verify")
        self.verify_button.setToolTip("Build the folder and run its demo on the clip (ARM: under qemu), "
                                      "comparing the detections with this machine's")
        self.verify_button.clicked.connect(lambda: self.verify())
        self.bench_button = QPushButton("Benchmark")
        self.bench_button.clicked.connect(lambda: self.benchmark())
        form = QFormLayout()
        form.addRow("Models", self.models_label)
        form.addRow("Target", self.target_combo)
        custom = QHBoxLayout()
        for label, w in (("triple", self.triple), ("cpu", self.cpu), ("features", self.features)):
            custom.addWidget(QLabel(label))
            custom.addWidget(w, 1)
        form.addRow("", custom)
        form.addRow("", self.target_label)
        form.addRow("Module name", self.module)
        form.addRow("Output folder", self.outdir)
        form.addRow("Verify clip", self.clip)
        buttons = QHBoxLayout()
        for b in (self.compile_button, self.verify_button, self.bench_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.files = QListWidget()
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setStyleSheet("font-size: 12pt; font-weight: bold;")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(("runner", "µs per frame", "note"))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 230)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFont("monospace"))
        self.log.setMaximumBlockCount(3000)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("Files"))
        ll.addWidget(self.files, 1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.result_label)
        rl.addWidget(QLabel("Per-frame time (featurizer + classifier)"))
        rl.addWidget(self.table, 1)
        rl.addWidget(self.log, 1)
        split_panel(self, left, right, (350, 700), header=(form, buttons))
        if live is not None:
            live.models_changed.connect(lambda _m: self._show_models())
        self._show_models()
        self._target_changed()

    # ------------------------------------------------------------------ state
    def _show_models(self) -> None:
        m = self.live.models if self.live is not None else None
        if m is None:
            self.models_label.setText("no live view")
            return
        clf = Path(m.classifier_path).name if m.classifier is not None else "no classifier (featurizer only)"
        feat = Path(m.featurizer_path).name if m.featurizer_path != "built-in" else "built-in featurizer"
        self.models_label.setText(f"{feat} + {clf}  (the live view's models)")

    def _target_changed(self) -> None:
        custom = self.target_combo.currentData() == "custom"
        for w in (self.triple, self.cpu, self.features):
            w.setEnabled(custom)
        try:
            t = self.target()
            # one line, elided to the panel's width (the host lists ~100 features: all in the tooltip)
            self.target_label.setText(f"{t.triple}  cpu {t.cpu}  -O{t.opt_level}  features {t.features or '–'}")
        except (CompileError, ValueError) as e:
            self.target_label.setText(str(e))
        self._clear_results()

    def _clear_results(self) -> None:
        """The last compile / verify / benchmark results describe another target: not shown under this one."""
        self.bench_rows = []
        self.table.setRowCount(0)
        self.result_label.clear()
        self.files.clear()

    def target(self) -> Target:
        name = str(self.target_combo.currentData())
        if name == "custom":
            if not self.triple.text().strip():
                raise CompileError("custom target: give a triple (and cpu, features)")
            return resolve_target(None, triple=self.triple.text().strip(),
                                  cpu=self.cpu.text().strip() or None,
                                  features=self.features.text().strip() or None)
        return resolve_target(name)

    def set_target(self, name: str) -> None:
        self.target_combo.setCurrentIndex(self.target_combo.findData(name))

    def set_busy(self, busy: bool) -> None:
        for b in (self.compile_button, self.verify_button, self.bench_button):
            b.setEnabled(not busy)

    def _remember(self) -> None:
        self.remember("compile/target", self.target_combo.currentData())
        for k, w in (("triple", self.triple), ("cpu", self.cpu), ("features", self.features),
                     ("module", self.module)):
            self.remember(f"compile/{k}", w.text())

    def _inputs(self):
        """(models, target, module name, outdir) or None with the error shown."""
        self._remember()
        if self.live is None:
            self.show_error("no live view to take the models from")
            return None
        try:
            target = self.target()
            from core.compiler.lower import check_module_name

            name = check_module_name(self.module.text().strip())
        except (CompileError, ValueError) as e:
            self.show_error(str(e))
            return None
        out = self.outdir.text()
        if not out:
            self.show_error("choose an output folder")
            return None
        return self.live.models, target, name, out

    # ------------------------------------------------------------------ jobs
    def compile(self) -> bool:
        got = self._inputs()
        if got is None:
            return False
        m, target, name, out = got
        graphs = [m.featurizer] + ([m.classifier] if m.classifier is not None else [])
        labels = list(m.labels) if m.classifier is not None else None
        sources = [Path(p).name for p in (m.featurizer_path, m.classifier_path) if p]
        self.files.clear()
        return self.run_job("Compile",
                            lambda ctx: compile_job(graphs, out, target, name, labels, sources, ctx),
                            on_result=self._compiled, on_log=self.log.appendPlainText)

    def _compiled(self, c: Compiled) -> None:
        self.compiled = c
        for f in c.files:
            self.files.addItem(Path(f).name)
        self.result_label.setText(f"Compiled for {c.target.name} in {c.seconds:.1f} s → {c.outdir}")

    def verify(self) -> bool:
        got = self._inputs()
        if got is None:
            return False
        m, target, name, out = got
        if m.classifier is None:
            self.show_error("Verify runs the demo, which needs a featurizer and a classifier")
            return False
        if self.compiled is None or self.compiled.outdir != str(Path(out)) or self.compiled.target != target:
            self.show_error("compile for this target and folder first")
            return False
        clip = self.clip.text()
        labels = list(m.labels)

        def job(ctx: JobContext):
            from core.compiler.verify import verify_export

            ctx.stage(f"building and running on {Path(clip).name}")
            return verify_export(out, target, name, m.featurizer, m.classifier, labels, clip, log=ctx.log)

        return self.run_job("Verify", job, on_result=self._verified, on_log=self.log.appendPlainText)

    def _verified(self, v) -> None:
        self.verification = v
        for ln in v.device_lines:
            self.log.appendPlainText(f"{v.target}: {ln}")
        if v.passed:
            words = ", ".join(ln.split("% ", 1)[1].removesuffix(" >>>") for ln in v.device_lines) or "nothing"
            self.result_label.setText(f"✔ Verified on {v.target} ({v.how}): detected {words}, "
                                      "as on this machine")
            self.result_label.setStyleSheet("font-size: 12pt; font-weight: bold; color: #40b040;")
        else:
            self.result_label.setText(f"✘ {v.target} ({v.how}) detected {list(v.device_lines)} "
                                      f"but this machine {list(v.host_lines)}")
            self.result_label.setStyleSheet("font-size: 12pt; font-weight: bold; color: #e04040;")

    def benchmark(self) -> bool:
        got = self._inputs()
        if got is None:
            return False
        m, target, name, out = got
        clip = self.clip.text()
        folder = out if self.compiled is not None and self.compiled.outdir == str(Path(out)) \
            and self.compiled.target == target else None

        def job(ctx: JobContext):
            from core.compiler.verify import benchmark

            ctx.stage("timing per frame")
            return benchmark(m.featurizer, m.classifier, clip, folder=folder, target=target, module_name=name,
                             log=ctx.log, cancel=ctx.cancel)

        return self.run_job("Benchmark", job, on_result=self._benched, on_log=self.log.appendPlainText)

    def _benched(self, rows) -> None:
        self.bench_rows = list(rows)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, v in enumerate((r.name, f"{r.us_per_frame:.1f}", r.note)):
                self.table.setItem(i, j, QTableWidgetItem(v))
