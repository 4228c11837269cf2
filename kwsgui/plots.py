"""Plot items of the live view: a scrolling spectrogram fed from a column ring, and class
probability bars. Items are created once; drawing only calls setImage / setOpts."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QRectF, Qt

SPECTROGRAM_CMAP = "inferno"
DISPLAY_FLOOR = 1e-3  # features are log(x + 1) mel energies: show them on a dB-like scale
DISPLAY_LEVELS_DB = (-30.0, 6.0)

BAR_COLOUR = (70, 130, 200)
BAR_HOT_COLOUR = (255, 170, 40)


class ColumnRing:
    """The newest `capacity` columns of `n_rows` values, each column stored twice (at `i % cap`
    and `i % cap + cap`), so the newest columns are always one contiguous view: no np.roll, no
    reallocation. Single-threaded (the GUI thread)."""

    def __init__(self, capacity: int, n_rows: int):
        if capacity < 1 or n_rows < 1:
            raise ValueError(f"ring needs capacity >= 1 and n_rows >= 1, got {capacity}, {n_rows}")
        self.capacity, self.n_rows = int(capacity), int(n_rows)
        self._buf = np.zeros((2 * self.capacity, self.n_rows), dtype=np.float32)  # (2 * cap, rows)
        self.total = 0  # columns ever written

    def clear(self) -> None:
        self.total = 0

    def write(self, cols: np.ndarray) -> None:
        """Append (n, n_rows) columns."""
        cols = np.asarray(cols, dtype=np.float32).reshape(-1, self.n_rows)
        n, cap = len(cols), self.capacity
        if n > cap:  # only the newest `cap` survive
            self.total += n - cap
            cols, n = cols[-cap:], cap
        start = self.total % cap
        head = min(n, cap - start)  # before the wrap, then after it: two slice copies each
        for dst in (start, start + cap):
            self._buf[dst : dst + head] = cols[:head]
        if head < n:
            rest = n - head
            self._buf[:rest] = cols[head:]
            self._buf[cap : cap + rest] = cols[head:]
        self.total += n

    def latest(self, n: int | None = None) -> np.ndarray:
        """A view of the newest min(n, total, capacity) columns, oldest first: (m, n_rows)."""
        m = min(self.total, self.capacity) if n is None else min(n, self.total, self.capacity)
        s = (self.total - m) % self.capacity
        return self._buf[s : s + m]


def to_display(features: np.ndarray) -> np.ndarray:
    """Feature rows -> the spectrogram's display values (dB-like, float32, always finite)."""
    x = np.maximum(np.nan_to_num(np.asarray(features, dtype=np.float32), nan=0.0, posinf=0.0), 0.0)
    return (10.0 * np.log10(x + DISPLAY_FLOOR)).astype(np.float32)


class SpectrogramPlot(pg.PlotWidget):
    """A scrolling image of the last `window_s` seconds of feature frames (time in seconds)."""

    def __init__(self, parent=None, window_s: float = 6.0):
        super().__init__(parent)
        self.window_s = float(window_s)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "time", units="s")
        self.setLabel("left", "mel band")
        self.showGrid(x=False, y=False)
        self.image_item = pg.ImageItem(axisOrder="col-major")  # image[x = time, y = band]
        self.image_item.setColorMap(pg.colormap.get(SPECTROGRAM_CMAP))
        self.image_item.setLevels(DISPLAY_LEVELS_DB)
        self.addItem(self.image_item)
        self.colour_bar = self.getPlotItem().addColorBar(
            self.image_item, colorMap=pg.colormap.get(SPECTROGRAM_CMAP), values=DISPLAY_LEVELS_DB,
            label="level (dB)", interactive=False, width=14)
        self.ring = ColumnRing(1, 1)
        self.frame_duration_s = 0.032
        self._dirty = False
        self.configure(80, 512 / 16000)

    def configure(self, n_features: int, frame_duration_s: float) -> None:
        """(Re)allocate the ring for a featurizer; clears the picture."""
        self.frame_duration_s = float(frame_duration_s)
        cap = max(1, math.ceil(self.window_s / self.frame_duration_s))
        self.ring = ColumnRing(cap, n_features)
        self.setYRange(0, n_features, padding=0)
        self.clear_image()

    def clear_image(self) -> None:
        self.ring.clear()
        self.image_item.clear()
        self.setXRange(0, self.window_s, padding=0)
        self._dirty = False

    def append(self, features: np.ndarray) -> None:
        self.ring.write(to_display(features))
        self._dirty = True

    @property
    def pending(self) -> bool:
        """New frames arrived since the last draw."""
        return self._dirty

    def draw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        img = self.ring.latest()  # (m, n_features), a view: no copy, no reorder
        if not len(img):
            return
        dt = self.frame_duration_s
        t_end = self.ring.total * dt
        self.image_item.setImage(img, autoLevels=False, levels=DISPLAY_LEVELS_DB)
        self.image_item.setRect(QRectF(t_end - len(img) * dt, 0.0, len(img) * dt, self.ring.n_rows))
        self.setXRange(max(0.0, t_end - self.window_s), max(self.window_s, t_end), padding=0)

    @property
    def columns(self) -> int:
        """How many frame columns the image shows now."""
        img = self.image_item.image
        return 0 if img is None else int(img.shape[0])


class ProbabilityBars(pg.PlotWidget):
    """Horizontal bars, one per class, labelled with the category names; bars above the
    threshold are highlighted, the threshold is a dashed line."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "probability")
        self.setXRange(0.0, 1.0, padding=0.02)
        self.getViewBox().invertY(True)  # class 0 at the top
        self.getAxis("left").setStyle(tickTextOffset=4)
        self._brush = pg.mkBrush(*BAR_COLOUR)
        self._hot = pg.mkBrush(*BAR_HOT_COLOUR)
        self.bars = pg.BarGraphItem(x0=np.zeros(0), y=np.zeros(0), height=0.75, width=np.zeros(0),
                                    brush=self._brush, pen=pg.mkPen(None))
        self.addItem(self.bars)
        self.threshold_line = pg.InfiniteLine(pos=0.6, angle=90,
                                              pen=pg.mkPen((220, 220, 220), width=1, style=Qt.DashLine))
        self.addItem(self.threshold_line)
        self.labels: tuple[str, ...] = ()
        self.threshold = 0.6
        self._probs: np.ndarray | None = None
        self._dirty = False

    def set_labels(self, labels: tuple[str, ...] | list[str]) -> None:
        self.labels = tuple(labels)
        n = len(self.labels)
        y = np.arange(n, dtype=float)
        self.bars.setOpts(x0=np.zeros(n), y=y, height=0.75, width=np.zeros(n), brushes=None,
                          brush=self._brush)
        self.getAxis("left").setTicks([[(float(i), lb) for i, lb in enumerate(self.labels)]])
        self.setYRange(-0.6, max(n, 1) - 0.4, padding=0)
        self._probs = None

    def set_threshold(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self.threshold_line.setPos(self.threshold)
        self._dirty = self._probs is not None

    def set_probs(self, probs: np.ndarray) -> None:
        self._probs = probs
        self._dirty = True

    @property
    def dirty(self) -> bool:
        """Something changed since the last draw (probabilities or threshold)."""
        return self._dirty

    @property
    def probs(self) -> np.ndarray | None:
        return self._probs

    def top(self) -> tuple[str, float] | None:
        """The most probable class of the current frame and its probability."""
        p = self._probs
        if p is None or not len(p) or len(p) != len(self.labels):
            return None
        i = int(np.argmax(p))
        return self.labels[i], float(p[i])

    def draw(self) -> bool:
        """Redraw when something changed; True when it did."""
        if not self._dirty or self._probs is None or len(self._probs) != len(self.labels):
            return False
        self._dirty = False
        p = self._probs
        brushes = [self._hot if v > self.threshold else self._brush for v in p]
        self.bars.setOpts(width=np.clip(p, 0.0, 1.0), brushes=brushes)
        return True
