"""Models panel: import an ONNX, ELL or .kwm model (on a worker), show its graph summary (nodes,
shapes, parameters, multiply-adds per frame) and its metadata as a tree (featurizer, training,
provenance, VAD, ...), add / replace / remove its VAD, save it as .kwm and use it as the live
view's classifier. A new import clears the old model's summary first: a failed one leaves none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import KwsError
from core.graph import modelfile
from core.graph.ir import Graph
from core.graph.summary import stats
from kwsgui.jobs import JobContext
from kwsgui.model_set import BUILTIN
from kwsgui.panel import Panel
from kwsgui.widgets import NOTE_STYLE, PathField

MODEL_FILTER = "Models (*.onnx *.ell *.kwm);;All files (*)"
COLUMNS = ("node", "op", "shape", "parameters", "multiply-adds")
LIST_ITEMS = 12  # a list of plain values shows its first items, then how many more


def value_text(v) -> str:
    """A metadata value as a person reads it: 0.002 not 0.0020000000949949026, yes/no, – for none."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        shown = ", ".join(value_text(x) for x in v[:LIST_ITEMS])
        return f"{shown}, … ({len(v)} in all)" if len(v) > LIST_ITEMS else shown
    return str(v)


def metadata_items(meta: dict, skip: tuple[str, ...] = ()) -> list[QTreeWidgetItem]:
    """Tree items (key, value) of a model's metadata: nested dicts (and lists of them) as branches."""

    def item(key: str, v) -> QTreeWidgetItem:
        if isinstance(v, dict):
            it = QTreeWidgetItem([key, f"{len(v)} entries" if v else "–"])
            it.addChildren([item(str(k), x) for k, x in v.items()])
        elif isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list, tuple)) for x in v):
            it = QTreeWidgetItem([key, f"{len(v)} items"])
            it.addChildren([item(f"[{i}]", x) for i, x in enumerate(v)])
        else:
            it = QTreeWidgetItem([key, value_text(v)])
            it.setToolTip(1, value_text(v) if not isinstance(v, (list, tuple)) else ", ".join(map(str, v)))
        return it

    return [item(str(k), v) for k, v in meta.items() if k not in skip]


@dataclass(frozen=True)
class Imported:
    """An imported graph (handed over to the GUI thread; the worker keeps no reference)."""

    graph: Graph
    path: str
    seconds: float


def import_job(path: str, softmax: bool, categories: str | None, ctx: JobContext) -> Imported:
    import time

    from core import models

    t0 = time.perf_counter()
    p = Path(path)
    ctx.stage(f"reading {p.name}")
    if p.suffix.lower() == ".onnx":
        from core.errors import ModelFormatError
        from core.importers.onnx import load_onnx

        if not p.is_file():
            raise ModelFormatError(f"{p}: no such model file")
        graph = load_onnx(p, softmax=softmax)
    else:
        graph = models.load_model(p)
    if categories:
        graph.metadata["categories"] = models.load_categories(categories)
    ctx.stage("checking the graph")
    stats(graph)  # shapes infer: a broken graph fails here, in the worker
    return Imported(graph, str(p), time.perf_counter() - t0)


class ModelsPanel(Panel):
    title = "Models"
    use_in_live = pyqtSignal()

    def __init__(self, parent: QWidget | None = None, *, settings, live=None, vad_params=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.vad_params = vad_params  # () -> VadParams: the VAD panel's sliders (None: ELL's defaults)
        self.graph: Graph | None = None
        self.path: str | None = None
        self.source = PathField(settings, "models/source", caption="Import model", filt=MODEL_FILTER,
                                placeholder="an .onnx, .ell or .kwm model")
        self.categories = PathField(settings, "models/categories", caption="Categories",
                                    filt="Text files (*.txt);;All files (*)",
                                    placeholder="optional categories.txt stored in the model")
        self.softmax = QCheckBox("final LogSoftmax → Softmax (emit probabilities, as ELL does)")
        self.softmax.setChecked(settings.value("models/softmax", "true") == "true")
        self.import_button = QPushButton("Import")
        self.import_button.clicked.connect(lambda: self.import_model())
        self.add_vad_button = QPushButton("Add / replace VAD")
        self.add_vad_button.setToolTip("One VAD on the input resetting every GRU/LSTM "
                                       "(parameters from the VAD panel)")
        self.add_vad_button.clicked.connect(self.add_vad)
        self.strip_vad_button = QPushButton("Remove VAD")
        self.strip_vad_button.clicked.connect(self.remove_vad)
        self.save_button = QPushButton("Save as .kwm…")
        self.save_button.clicked.connect(lambda: self.save())
        self.use_button = QPushButton("Use in live view")
        self.use_button.clicked.connect(self.use_in_live_view)
        form = QFormLayout()
        form.addRow("Model", self.source)
        form.addRow("Categories", self.categories)
        form.addRow("", self.softmax)
        buttons = QHBoxLayout()
        for b in (self.import_button, self.add_vad_button, self.strip_vad_button, self.save_button,
                  self.use_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.heading = QLabel("No model imported")
        self.heading.setStyleSheet("font-size: 12pt; font-weight: bold;")
        self.totals = QLabel()
        self.meta = QLabel()
        self.meta.setWordWrap(True)
        self.meta.setStyleSheet(NOTE_STYLE)
        self.meta_tree = QTreeWidget()
        self.meta_tree.setHeaderLabels(("metadata", "value"))
        self.meta_tree.setColumnWidth(0, 170)
        self.meta_tree.setAlternatingRowColors(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setAlternatingRowColors(True)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.error)
        lay.addWidget(self.heading)
        lay.addWidget(self.totals)
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(self.meta_tree)
        split.setSizes([640, 420])
        lay.addWidget(split, 1)
        lay.addWidget(self.meta)
        lay.addWidget(self.job_bar)
        self._update_buttons()

    def set_busy(self, busy: bool) -> None:
        self.import_button.setEnabled(not busy)
        self._update_buttons(busy)

    def _update_buttons(self, busy: bool = False) -> None:
        g = self.graph
        has = g is not None and not busy
        rnn = has and any(n.op in ("gru", "lstm") for n in g.nodes)
        self.add_vad_button.setEnabled(bool(rnn))
        self.strip_vad_button.setEnabled(bool(has and g.by_op("vad")))
        self.save_button.setEnabled(has)
        self.use_button.setEnabled(has and self.live is not None and g.metadata.get("kind") != "featurizer")

    # ------------------------------------------------------------------ import
    def import_model(self, path: str | Path | None = None) -> bool:
        if path is not None:
            self.source.set_path(path)
        src = self.source.text()
        if not src:
            self.show_error("choose a model file to import")
            return False
        soft = self.softmax.isChecked()
        self.remember("models/softmax", "true" if soft else "false")
        cats = self.categories.text() or None
        if self.busy:
            self.show_error(f"{self.job.name} is still running: stop it first")
            return False
        self.graph, self.path = None, None  # the old model's summary must not stand under this import
        self._clear_summary(f"Importing {Path(src).name}…")
        self._update_buttons()
        return self.run_job("Import", lambda ctx: import_job(src, soft, cats, ctx), on_result=self._imported,
                            on_finished=self._import_finished)

    def _clear_summary(self, heading: str) -> None:
        self.heading.setText(heading)
        self.totals.clear()
        self.table.setRowCount(0)
        self.meta_tree.clear()
        self.meta.clear()

    def _import_finished(self, summary) -> None:
        if self.graph is None:
            self._clear_summary("No model imported" + (" (the import failed)" if summary.error else ""))

    def _imported(self, r: Imported) -> None:
        self.path = r.path
        self.set_graph(r.graph)
        self.message.emit(f"Imported {Path(r.path).name} in {r.seconds:.1f} s")

    def set_graph(self, graph: Graph) -> None:
        self.graph = graph
        self.show_summary()
        self._update_buttons()

    def show_summary(self) -> None:
        g = self.graph
        s = stats(g)
        kind = g.metadata.get("kind", "model")
        name = Path(self.path).name if self.path else "(in memory)"
        self.heading.setText(f"{name}: {kind}, input {s['input_size']} → output {s['output_size']} per frame")
        vad = g.by_op("vad")
        self.totals.setText(f"{len(g.nodes)} nodes · {s['params']:,} parameters "
                            f"({s['weight_bytes'] / 1024:.1f} KiB) · {s['macs']:,} multiply-adds per frame · "
                            + ("VAD: yes" if vad else "VAD: none"))
        self.table.setRowCount(len(s["rows"]))
        for i, r in enumerate(s["rows"]):
            values = (r["id"], r["op"], "×".join(str(d) for d in r["shape"]), f"{r['params']:,}",
                      f"{r['macs']:,}")
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                if j >= 3:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
        cats = g.categories
        self.meta.setText(f"categories ({len(cats)}): {', '.join(cats[:12])}{' …' if len(cats) > 12 else ''}"
                          if cats else "no categories stored")
        self.meta_tree.clear()
        self.meta_tree.addTopLevelItems(metadata_items(g.metadata, skip=("categories",)))
        self.meta_tree.expandToDepth(0)

    def node_ops(self) -> list[str]:
        return [self.table.item(i, 1).text() for i in range(self.table.rowCount())]

    # ------------------------------------------------------------------ VAD
    def add_vad(self) -> bool:
        from core.vad.model import add_vad, frame_timing
        from core.vad.params import VadParams

        g = self.graph
        if g is None:
            return False
        params = self.vad_params() if self.vad_params is not None else VadParams()
        try:
            m = self.live.models if self.live is not None else None
            feat = m.featurizer if m is not None and m.n_features == g.input_size else None
            path = m.featurizer_path if feat is not None and m.featurizer_path != BUILTIN else None
            fd, sr = frame_timing(g, feat, path)
            self.set_graph(add_vad(g, params, fd, sr))
        except (KwsError, ValueError) as e:
            self.show_error(f"cannot add a VAD: {e}")
            return False
        self.clear_error()
        self.message.emit(f"VAD added ({1000 * fd:g} ms frames)")
        return True

    def remove_vad(self) -> bool:
        from core.vad.model import strip_vad

        if self.graph is None:
            return False
        try:
            self.set_graph(strip_vad(self.graph))
        except KwsError as e:
            self.show_error(str(e))
            return False
        return True

    # ------------------------------------------------------------------ output
    def save(self, path: str | Path | None = None) -> bool:
        if self.graph is None:
            return False
        if path is None:
            start = str(Path(self.path).with_suffix(".kwm")) if self.path else ""
            path, _ = QFileDialog.getSaveFileName(self, "Save model", start, "kwsgui models (*.kwm)")
            if not path:
                return False
        try:
            modelfile.save(self.graph, path)  # atomic
        except KwsError as e:
            self.show_error(str(e))
            return False
        self.path = str(path)
        self.show_summary()
        self.message.emit(f"Saved {path}")
        return True

    def use_in_live_view(self) -> bool:
        if self.graph is None or self.live is None:
            return False
        label = Path(self.path).name if self.path else "imported model"
        if not self.live.use_classifier_graph(self.graph, label):
            self.show_error(f"the live view refused the model: {self.live.error_label.text()}")
            return False
        self.use_in_live.emit()
        return True
