"""Charts of the job panels: per-class counts, a confusion-matrix heat map, epoch curves and a
scrolling line plot of class probabilities. Items are created once; updates only set data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QFont, QFontMetrics

SPLIT_COLOURS = {"training": (70, 130, 200), "validation": (240, 160, 50), "testing": (90, 180, 110)}
LEGEND = {"brush": (25, 25, 25, 210), "pen": (90, 90, 90), "labelTextColor": (225, 225, 225)}
LINE_COLOURS = [(255, 170, 40), (80, 170, 255), (120, 220, 120), (230, 90, 200), (240, 240, 100),
                (160, 120, 255)]


def _quiet(plot: pg.PlotWidget) -> None:
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()


class CountsChart(pg.PlotWidget):
    """Horizontal stacked bars: files (or rows) per class and split, class names on the left."""

    def __init__(self, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.setLabel("bottom", "files")
        self.getViewBox().invertY(True)
        self.legend = self.addLegend(offset=(-10, 10), **LEGEND)
        self.bars = {}
        for split, colour in SPLIT_COLOURS.items():
            item = pg.BarGraphItem(x0=np.zeros(0), y=np.zeros(0), height=0.7, width=np.zeros(0),
                                   brush=pg.mkBrush(*colour), pen=pg.mkPen(None), name=split)
            self.addItem(item)
            self.bars[split] = item
        self.counts: dict[str, dict[str, int]] = {}

    def set_counts(self, counts: dict[str, dict[str, int]], unit: str = "files") -> None:
        """counts[split][class] -> n; classes in the order of first appearance."""
        self.counts = counts
        self.setLabel("bottom", unit)
        classes: list[str] = []
        for per in counts.values():
            classes += [c for c in per if c not in classes]
        y = np.arange(len(classes), dtype=float)
        left = np.zeros(len(classes))
        for split, item in self.bars.items():
            w = np.array([counts.get(split, {}).get(c, 0) for c in classes], dtype=float)
            item.setOpts(x0=left.copy(), y=y, height=0.7, width=w)
            left += w
        self.getAxis("left").setTicks([[(float(i), c) for i, c in enumerate(classes)]])
        self.setYRange(-0.6, max(len(classes), 1) - 0.4, padding=0)
        self.setXRange(0, max(1.0, float(left.max()) if len(left) else 1.0), padding=0.02)

    def total(self, split: str) -> int:
        return int(sum(self.counts.get(split, {}).values()))


class ClassAxis(pg.AxisItem):
    """An axis that names every class at its tick, none skipped: level text when the names fit
    beside each other, turned upright (reading upwards) when they do not; the axis grows to
    the longest name (bottom) or is as wide as it (left)."""

    def __init__(self, orientation: str, **kw):
        super().__init__(orientation, **kw)
        self.names: list[tuple[float, str]] = []
        self.upright = False

    def set_names(self, names: Sequence[tuple[float, str]]) -> None:
        self.names = list(names)
        self.setTicks([self.names])
        self.picture = None
        self.update()

    def _font(self) -> QFont:
        return self.style["tickFont"] or self.font()

    def generateDrawSpecs(self, p):
        specs = super().generateDrawSpecs(p)
        if specs is None or self.orientation != "bottom" or not self.names:
            return specs
        axis, ticks, texts = specs
        fm = QFontMetrics(self._font())
        lo, hi = self.range
        width = self.mapRectFromParent(self.geometry()).width()
        step = width / max(abs(hi - lo), 1e-9)  # pixels per class
        widest = max(fm.horizontalAdvance(n) for _, n in self.names)
        self.upright = widest > 0.9 * step
        if not self.upright:
            self._fit_height(fm.height())
            return specs
        top = self.style["tickTextOffset"][1] + max(0, self.style["tickLength"])
        upright = [(QPointF((v - lo) * step, top), n) for v, n in self.names if lo <= v <= hi]
        self._fit_height(widest)
        return axis, ticks, upright

    def _fit_height(self, text_px: float) -> None:
        h = int(text_px + self.style["tickTextOffset"][1] + max(0, self.style["tickLength"]) + 4
                + (self.label.boundingRect().height() * 0.8 if self.label.isVisible() else 0))
        if self.fixedHeight != h:
            self.setHeight(h)

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):
        if not self.upright or self.orientation != "bottom":
            super().drawPicture(p, axisSpec, tickSpecs, textSpecs)
            return
        super().drawPicture(p, axisSpec, tickSpecs, [])
        p.setFont(self._font())
        p.setPen(self.textPen())
        fm = QFontMetrics(self._font())
        for pos, name in textSpecs:  # each name turned a quarter left, its end at the tick
            p.save()
            p.translate(pos)
            p.rotate(-90)
            w = fm.horizontalAdvance(name)
            p.drawText(QRectF(-w - 2, -fm.height() / 2, w + 2, fm.height()),
                       int(Qt.AlignRight | Qt.AlignVCenter), name)
            p.restore()


class HeatMap(pg.PlotWidget):
    """A confusion matrix (rows expected, columns predicted), coloured by row share, with counts
    written in the cells when the matrix is small. Every row and column is named (ClassAxis);
    with many classes the names get a smaller font and the column names stand upright."""

    MAX_TEXT = 16

    def __init__(self, parent=None):
        super().__init__(parent, axisItems={"left": ClassAxis("left"), "bottom": ClassAxis("bottom")})
        _quiet(self)
        self.getViewBox().invertY(True)
        self.getViewBox().setAspectLocked(False)
        self.setLabel("left", "expected")
        self.setLabel("bottom", "predicted")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("viridis"))
        self.addItem(self.image)
        self._texts: list[pg.TextItem] = []
        self.matrix: np.ndarray | None = None
        for name in ("left", "bottom"):  # empty until a matrix comes: no numbers on the class axes
            self.getAxis(name).set_names([])
        self.setXRange(0, 1, padding=0)
        self.setYRange(0, 1, padding=0)

    def set_matrix(self, matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str] | None = None) -> None:
        m = np.asarray(matrix, dtype=float)
        cols = list(cols) if cols is not None else list(rows)
        self.matrix = m
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1.0)
        self.image.setImage(share.astype(np.float32), autoLevels=False, levels=(0.0, 1.0))
        self.image.setRect(QRectF(0, 0, m.shape[1], m.shape[0]))
        for t in self._texts:
            self.removeItem(t)
        self._texts = []
        if max(m.shape) <= self.MAX_TEXT:
            for (i, j), v in np.ndenumerate(m):
                if v:
                    t = pg.TextItem(f"{int(v)}", color="k" if share[i, j] > 0.6 else "w", anchor=(0.5, 0.5))
                    t.setPos(j + 0.5, i + 0.5)
                    self.addItem(t)
                    self._texts.append(t)
        n = max(len(rows), len(cols))
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * (1.0 if n <= 16 else 0.85 if n <= 32 else 0.7))
        for name in ("left", "bottom"):
            self.getAxis(name).setStyle(tickFont=font)
        self.getAxis("left").set_names([(i + 0.5, r) for i, r in enumerate(rows)])
        self.getAxis("bottom").set_names([(j + 0.5, c) for j, c in enumerate(cols)])
        self.setXRange(0, m.shape[1], padding=0)
        self.setYRange(0, m.shape[0], padding=0)


class EpochCurves(pg.GraphicsLayoutWidget):
    """Loss (left) and accuracy (right, training and validation) per epoch."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss_plot = self.addPlot(title="loss")
        self.acc_plot = self.addPlot(title='accuracy: <span style="color: #50aaff">training</span> · '
                                           '<span style="color: #78dc78">validation</span>')  # no legend on data
        for p in (self.loss_plot, self.acc_plot):
            p.setMenuEnabled(False)
            p.hideButtons()
            p.showGrid(x=True, y=True, alpha=0.2)
            p.setLabel("bottom", "epoch")
        self.acc_plot.setYRange(0, 1, padding=0.02)
        self.loss = self.loss_plot.plot(pen=pg.mkPen((255, 170, 40), width=2), symbol="o", symbolSize=5)
        self.train_acc = self.acc_plot.plot(pen=pg.mkPen((80, 170, 255), width=2), symbol="o", symbolSize=5)
        self.val_acc = self.acc_plot.plot(pen=pg.mkPen((120, 220, 120), width=2), symbol="o", symbolSize=5)
        self.clear_points()

    def clear_points(self) -> None:
        self.epochs: list[int] = []
        self.values = {"loss": [], "train": [], "val": []}
        for c in (self.loss, self.train_acc, self.val_acc):
            c.setData([], [])

    def add_point(self, epoch: int, loss: float, train_acc: float, val_acc: float) -> None:
        self.epochs.append(epoch)
        for k, v in (("loss", loss), ("train", train_acc), ("val", val_acc)):
            self.values[k].append(float(v))
        x = np.array(self.epochs, dtype=float)
        self.loss.setData(x, np.array(self.values["loss"]))
        self.train_acc.setData(x, np.array(self.values["train"]))
        val = np.array(self.values["val"])
        ok = np.isfinite(val)
        self.val_acc.setData(x[ok], val[ok])

    @property
    def points(self) -> int:
        return len(self.epochs)


class TopClassLines(pg.PlotWidget):
    """The last seconds of the probabilities of the most probable classes, as lines, with the
    threshold as a dashed line. Fed from a column ring; `draw` only calls setData."""

    def __init__(self, parent=None, lines: int = 4):
        super().__init__(parent)
        _quiet(self)
        self.setYRange(0.0, 1.02, padding=0)
        self.setLabel("bottom", "time", units="s")
        self.setLabel("left", "probability")
        self.curves = []
        for k in range(lines):
            c = self.plot(pen=pg.mkPen(LINE_COLOURS[k % len(LINE_COLOURS)], width=2))
            c.setDownsampling(auto=True, method="peak")
            c.setClipToView(True)
            self.curves.append(c)
        self.threshold_line = pg.InfiniteLine(pos=0.6, angle=0,
                                              pen=pg.mkPen((220, 220, 220), width=1, style=Qt.DashLine))
        self.addItem(self.threshold_line)
        self.shown: list[int] = []

    def set_threshold(self, threshold: float) -> None:
        self.threshold_line.setPos(float(threshold))

    def legend_html(self, labels: Sequence[str]) -> str:
        """The classes drawn now, each in its line's colour (for a label outside the plot)."""
        parts = []
        for k, i in enumerate(self.shown):
            r, g, b = LINE_COLOURS[k % len(LINE_COLOURS)]
            name = labels[i] if i < len(labels) else str(i)
            parts.append(f'<span style="color: rgb({r},{g},{b}); font-weight: bold;">━ {name}</span>')
        return "&nbsp;&nbsp;&nbsp;".join(parts)

    def clear_lines(self) -> None:
        for c in self.curves:
            c.setData([], [])
        self.shown = []

    def draw(self, probs: np.ndarray, t_end: float, dt: float, labels: Sequence[str],
             hidden: set[int] | frozenset = frozenset()) -> None:
        """probs: (frames, classes), oldest first, ending at time t_end."""
        if not len(probs):
            return
        peak = probs.max(axis=0).copy()
        for i in hidden:
            if i < len(peak):
                peak[i] = -1.0
        top = [int(i) for i in np.argsort(-peak)[: len(self.curves)] if peak[i] >= 0]
        t = t_end - dt * np.arange(len(probs) - 1, -1, -1, dtype=float)
        for k, c in enumerate(self.curves):
            if k < len(top):
                c.setData(t, probs[:, top[k]])
            else:
                c.setData([], [])
        self.shown = top
        self.setXRange(t[0], max(t[-1], t[0] + dt), padding=0)
