"""Compile / export panel: the live view's featurizer + classifier to native code for a target
(host, Raspberry Pi presets, Cortex-M4 / Cortex-M0 microcontrollers, or a custom triple/cpu/features),
exported as a folder to build on the device, optionally with the classifier quantized to int8 first
(core.quantize, calibrated on a list of real clips); the files it wrote; for a microcontroller the
image is built at once and its flash and RAM use shown against the part's. Verify (build, run the
demo on a clip natively, under qemu-user, or the microcontroller image with the clip embedded under
qemu-system-arm; compare the detections with this machine's) and Benchmark (per-frame times) run on
the job worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QCheckBox,
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
from core.compiler.targets import Target, board_for, preset_names, resolve_target
from core.errors import CompileError, KwsError
from core.graph.ir import Graph
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
    graphs: tuple[Graph, ...] = field(default=(), compare=False)  # what was compiled (int8 classifier if quantized)
    quantized: str = ""  # "" or what quantization did (clips, weight bytes)
    clip: str = ""  # microcontrollers: the clip embedded in the image
    memory: object = None  # microcontrollers: core.compiler.verify.MemoryUse of the built image
    memory_note: str = ""  # why there is no memory use (no toolchain)


def quantize_classifier(featurizer: Graph, classifier: Graph, list_path: str, ctx: JobContext) -> tuple[Graph, str]:
    """core.quantize on the classifier, activation ranges calibrated on the list's clips (features of
    the featurizer, reset per clip); returns the int8 graph and a one-line summary."""
    from core.audio.wav import read_wav
    from core.evaluate.passrate import read_list, skipped_summary
    from core.pipeline import KeywordSpotter
    from core.quantize import calibrate, quantize_graph, weight_bytes

    clips = read_list(list_path)
    fz = KeywordSpotter(featurizer, None)
    skipped: list[str] = []
    ctx.stage(f"calibrating int8 ranges on {len(clips)} clips of {Path(list_path).name}", 0, len(clips))

    def features():
        for k, (path, _) in enumerate(clips):
            try:
                x, _ = read_wav(path, fz.sample_rate)
            except KwsError as e:  # counted and reported, never the end of the run
                skipped.append(str(e))
                continue
            fz.reset()
            yield fz.process(x)[0]
            ctx.progress(k + 1, len(clips))

    try:
        cal = calibrate(classifier, features(), should_stop=lambda: ctx.cancelled)
    except KwsError as e:
        ctx.check()
        first = f" ({len(skipped)} unreadable; the first: {skipped[0]})" if skipped else ""
        raise KwsError(f"{list_path}: {e}{first}") from None
    ctx.check()
    if skipped:
        ctx.log(skipped_summary(skipped))
    q = quantize_graph(classifier, cal)
    fb, qb = weight_bytes(classifier), weight_bytes(q)
    summary = (f"int8 classifier calibrated on {cal.clips} clips ({cal.frames} frames): "
               f"weights {qb:,} bytes (float {fb:,}, {fb / qb:.1f}x smaller)")
    ctx.log(summary)
    return q, summary


def compile_job(graphs: list, outdir: str, target: Target, name: str, labels: list[str] | None,
                sources: list[str], ctx: JobContext, *, calibration: str | None = None,
                clip: str | None = None) -> Compiled:
    """Quantize the classifier first when `calibration` (a list) is given; a microcontroller export
    embeds `clip` in its demo and is built at once (flash and RAM use)."""
    import shutil
    import time

    from core.compiler.export import export

    t0 = time.perf_counter()
    graphs = list(graphs)
    quantized = ""
    if calibration:
        graphs[-1], quantized = quantize_classifier(graphs[0], graphs[-1], calibration, ctx)
        sources = [*sources[:-1], f"{sources[-1]} (int8)"] if sources else sources
    mcu = target.is_bare_metal
    ctx.stage(f"lowering and compiling for {target.name} ({target.triple}, {target.cpu})", 0, 2)
    result = export(graphs, outdir, target=target, module_name=name, categories=labels, sources=sources,
                    demo_clip=clip if mcu else None)
    for p in result.files:
        ctx.log(f"wrote {p}")
    memory, note = None, ""
    if mcu:
        from core.compiler.verify import build_export, memory_use

        if shutil.which("arm-none-eabi-gcc") is None:
            note = "arm-none-eabi-gcc is not installed: no flash / RAM use (make in the folder builds the image)"
            ctx.log(note)
        else:
            ctx.stage(f"building the {target.name} image (arm-none-eabi-gcc)", 1, 2)
            memory = memory_use(build_export(result.outdir, target, name, log=ctx.log), target)
            ctx.log(f"{name}_demo.elf: text {memory.text}, data {memory.data}, bss {memory.bss} bytes: "
                    f"{memory.line()}")
    ctx.progress(2, 2, "written")
    return Compiled(str(result.outdir), tuple(str(p) for p in result.files), result.target,
                    result.module_name, result.demo, time.perf_counter() - t0, tuple(graphs), quantized,
                    str(clip or "") if mcu else "", memory, note)


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
        self.clip.setToolTip("Microcontrollers: the clip is built into the image's demo at Compile")
        self.quantize = QCheckBox("Quantize to int8")
        self.quantize.setToolTip("Before compiling: the classifier's dense, GRU and LSTM weights to int8 per output "
                                 "channel, activation ranges calibrated on the list's clips (kws quantize)")
        self.quantize.setChecked(str(settings.value("compile/quantize", "false")).lower() == "true")
        self.calibration = PathField(settings, "compile/calibration", caption="Calibration list",
                                     filt="Lists (*.txt);;All files (*)",
                                     placeholder="list of real clips to calibrate on")
        self.quantize.toggled.connect(self._quantize_toggled)
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
        quant = QHBoxLayout()
        quant.addWidget(self.quantize)
        quant.addWidget(QLabel("calibration list"))
        quant.addWidget(self.calibration, 1)
        form.addRow("Classifier", quant)  # always there (disabled when off): no row moves
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
        rl.addWidget(self.table, 3)
        rl.addWidget(self.log, 2)
        split_panel(self, left, right, (350, 700), header=(form, buttons))
        if live is not None:
            live.models_changed.connect(lambda _m: self._show_models())
        self._show_models()
        self._target_changed()
        self._quantize_toggled(self.quantize.isChecked())

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
            text = f"{t.triple}  cpu {t.cpu}  -O{t.opt_level}  features {t.features or '–'}"
            if t.is_bare_metal:
                text += f"  ·  {board_for(t).part}"
            self.target_label.setText(text)
        except (CompileError, ValueError) as e:
            self.target_label.setText(str(e))
        self._clear_results()

    def _quantize_toggled(self, on: bool) -> None:
        self.calibration.setEnabled(on)

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
        self.quantize.setEnabled(not busy)

    def _remember(self) -> None:
        self.remember("compile/target", self.target_combo.currentData())
        self.remember("compile/quantize", "true" if self.quantize.isChecked() else "false")
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
        calibration = None
        if self.quantize.isChecked():
            if m.classifier is None:
                self.show_error("Quantize to int8 needs a classifier in the live view")
                return False
            calibration = self.calibration.text()
            if not calibration:
                self.show_error("Quantize to int8: choose a calibration list of real clips")
                return False
        clip = self.clip.text()
        if target.is_bare_metal and not clip:
            self.show_error(f"{target.name}: choose the clip to build into the image's demo (Verify clip)")
            return False
        self.files.clear()
        self.compiled = None
        return self.run_job("Compile",
                            lambda ctx: compile_job(graphs, out, target, name, labels, sources, ctx,
                                                    calibration=calibration, clip=clip),
                            on_result=self._compiled, on_log=self.log.appendPlainText)

    def _compiled(self, c: Compiled) -> None:
        self.compiled = c
        for f in c.files:
            self.files.addItem(Path(f).name)
        kind = " (int8 classifier)" if c.quantized else ""
        text = f"Compiled for {c.target.name}{kind} in {c.seconds:.1f} s → {c.outdir}"
        if c.memory is not None:
            text += f"\n{c.memory.line()}"
        elif c.memory_note:
            text += f"\n{c.memory_note}"
        self.result_label.setText(text)
        fits = c.memory is None or c.memory.fits
        self.result_label.setStyleSheet("font-size: 12pt; font-weight: bold;" + ("" if fits else " color: #e04040;"))

    def verify(self) -> bool:
        got = self._inputs()
        if got is None:
            return False
        m, target, name, out = got
        if m.classifier is None:
            self.show_error("Verify runs the demo, which needs a featurizer and a classifier")
            return False
        c = self._compiled_here(out, target)
        if c is None:
            self.show_error("compile for this target and folder first")
            return False
        clip = self.clip.text()
        if target.is_bare_metal and str(Path(clip)) != str(Path(c.clip)):
            self.show_error(f"the {target.name} image has {Path(c.clip).name} built in: compile again to verify "
                            f"with {Path(clip).name}")
            return False
        labels = list(m.labels)
        featurizer, classifier = c.graphs if len(c.graphs) == 2 else (m.featurizer, m.classifier)
        name = c.module_name

        def job(ctx: JobContext):
            from core.compiler.verify import verify_export

            ctx.stage(f"building and running on {Path(clip).name}")
            return verify_export(out, target, name, featurizer, classifier, labels, clip, log=ctx.log)

        return self.run_job("Verify", job, on_result=self._verified, on_log=self.log.appendPlainText)

    def _verified(self, v) -> None:
        self.verification = v
        for ln in v.device_lines:
            self.log.appendPlainText(f"{v.target}: {ln}")
        if v.passed:
            words = ", ".join(ln.split("% ", 1)[1].removesuffix(" >>>") for ln in v.device_lines) or "nothing"
            c = self.compiled
            mem = f"\n{c.memory.line()}" if c is not None and c.memory is not None else ""
            self.result_label.setText(f"✔ Verified on {v.target} ({v.how}): detected {words}, "
                                      f"as on this machine{mem}")
            self.result_label.setStyleSheet("font-size: 12pt; font-weight: bold; color: #40b040;")
        else:
            self.result_label.setText(f"✘ {v.target} ({v.how}) detected {list(v.device_lines)} "
                                      f"but this machine {list(v.host_lines)}")
            self.result_label.setStyleSheet("font-size: 12pt; font-weight: bold; color: #e04040;")

    def _compiled_here(self, out: str, target: Target) -> Compiled | None:
        c = self.compiled
        return c if c is not None and c.outdir == str(Path(out)) and c.target == target else None

    def benchmark(self) -> bool:
        """Host JIT and interpreter per frame, and the exported demo where it can be timed. With an int8
        compile for this target the int8 classifier is timed beside the float one. A microcontroller
        image is not timed: qemu-system-arm translates instructions, it does not model the core's cycles."""
        got = self._inputs()
        if got is None:
            return False
        m, target, name, out = got
        clip = self.clip.text()
        c = self._compiled_here(out, target)
        folder = out if c is not None and not target.is_bare_metal else None
        float_graphs = (m.featurizer, m.classifier)
        int8 = c.graphs if c is not None and c.quantized and len(c.graphs) == 2 else None
        if c is not None:
            name = c.module_name

        def job(ctx: JobContext):
            from core.compiler.verify import BenchRow, benchmark

            ctx.stage("timing per frame")
            rows = []
            if int8 is not None:
                rows += [BenchRow(f"{r.name}, int8", r.us_per_frame, r.note)
                         for r in benchmark(*int8, clip, folder=folder, target=target, module_name=name,
                                            log=ctx.log, cancel=ctx.cancel)]
                rows += [BenchRow(f"{r.name}, float", r.us_per_frame, r.note)
                         for r in benchmark(*float_graphs, clip, log=ctx.log, cancel=ctx.cancel)]
            else:
                rows += benchmark(*float_graphs, clip, folder=folder, target=target, module_name=name,
                                  log=ctx.log, cancel=ctx.cancel)
            if target.is_bare_metal:
                rows.append(BenchRow(f"{target.name} image", float("nan"),
                                     "not timed: qemu-system-arm translates instructions and does not model the "
                                     "core's cycles; time it on the part"))
            return rows

        return self.run_job("Benchmark", job, on_result=self._benched, on_log=self.log.appendPlainText)

    def _benched(self, rows) -> None:
        self.bench_rows = list(rows)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            us = "–" if r.us_per_frame != r.us_per_frame else f"{r.us_per_frame:.1f}"  # NaN: not timed
            for j, v in enumerate((r.name, us, r.note)):
                item = QTableWidgetItem(v)
                item.setToolTip(v)
                self.table.setItem(i, j, item)
