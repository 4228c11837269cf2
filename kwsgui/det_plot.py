"""The DET curve of a calibration (core.evaluate.calibrate) in pyqtgraph: false rejection rate against
false accepts per hour on a log axis, one curve per smoothing, the target as a dashed line and the
chosen operating point ringed, as `kws calibrate --plot` draws it with matplotlib. Points with no
false accept sit on a dotted line at half of what one false accept is worth (a log axis has no 0)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt

from core.evaluate.calibrate import Calibration
from kwsgui.charts import LEGEND, LINE_COLOURS

CHOSEN_COLOUR = (230, 60, 80)


def decade_ticks(lo: float, hi: float) -> list[list[tuple[float, str]]]:
    """Log-axis ticks in the view's log10 coordinates: a labelled one at each power of ten, unlabelled
    ones at 2..9 times it (pyqtgraph's own labels every minor tick, which run into each other)."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    major = [(float(k), f"{10.0**k:g}") for k in range(k0, k1 + 1)]
    minor = [(math.log10(m * 10.0**k), "") for k in range(k0, k1) for m in range(2, 10)]
    return [major, minor]


class DetPlot(pg.PlotWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLogMode(x=True, y=False)
        self.setLabel("bottom", "false accepts per hour")
        self.setLabel("left", "false rejection rate (%)")
        self.legend = self.addLegend(offset=(10, -10), **LEGEND)  # bottom left: DET curves fall to the right
        self.curves: dict[int, pg.PlotDataItem] = {}  # smoothing -> its curve (shown ones)
        self._pool: list[pg.PlotDataItem] = []  # created once, reused
        self.chosen = self.plot([], [], pen=None, symbol="o", symbolSize=16, symbolBrush=None,
                                symbolPen=pg.mkPen(CHOSEN_COLOUR, width=3))
        self.target = pg.InfiniteLine(angle=90, pen=pg.mkPen((170, 170, 170), width=1, style=Qt.DashLine))
        self.floor = pg.InfiniteLine(angle=90, pen=pg.mkPen((110, 110, 110), width=1, style=Qt.DotLine))
        for line in (self.target, self.floor):
            line.hide()
            self.addItem(line)
        self.calibration: Calibration | None = None

    def set_calibration(self, cal: Calibration) -> None:
        self.calibration = cal
        self.legend.clear()
        self.curves = {}
        floor = cal.no_fa_floor
        top = max([floor * 10, *(p.fa_per_hour for p in cal.points)])
        self.getAxis("bottom").setTicks(decade_ticks(floor, top))
        for i, n in enumerate(cal.smoothings):
            if i == len(self._pool):
                self._pool.append(self.plot([], []))
            item = self._pool[i]
            pts = sorted(cal.curve(n), key=lambda p: p.threshold)
            colour = LINE_COLOURS[i % len(LINE_COLOURS)]
            item.setData(np.array([max(p.fa_per_hour, floor) for p in pts]), np.array([100 * p.frr for p in pts]),
                         pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=4, symbolBrush=colour,
                         symbolPen=None)
            self.curves[n] = item
            self.legend.addItem(item, f"smoothing {n}" if n > 1 else "no smoothing")
        for item in self._pool[len(cal.smoothings):]:
            item.setData([], [])
        c = cal.chosen
        self.chosen.setData([max(c.fa_per_hour, floor)], [100 * c.frr])
        self.legend.addItem(self.chosen, f"chosen: threshold {c.threshold:g}, smoothing {c.smoothing}")
        self.target.setValue(math.log10(max(cal.target_fa_per_hour, floor)))  # the view's x is log10 here
        self.floor.setValue(math.log10(floor))
        self.target.show()
        self.floor.show()
        self.setLabel("bottom", f"false accepts per hour (target {cal.target_fa_per_hour:g}, dashed; dotted: none; "
                                f"1 FA = {cal.fa_resolution_per_hour:.2g}/h)")
        self.setYRange(0, 100, padding=0.02)
        self.enableAutoRange(x=True)
