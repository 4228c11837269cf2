"""The VAD panel's plots: the clip's features, the level with noise floor and thresholds (log
scale), and the 0/1 signal with the resets, on one linked time axis. Items are created once;
`show_features` and `show_trace` only set data."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QRectF, Qt

from core.vad.analysis import VadTrace
from kwsgui.plots import DISPLAY_LEVELS_DB, SPECTROGRAM_CMAP, to_display

TINY = 1e-6  # the log-scale plot's floor


class VadPlots(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.spec_plot = self.addPlot(row=0, col=0, title="features")
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setColorMap(pg.colormap.get(SPECTROGRAM_CMAP))
        self.spec_plot.addItem(self.image)
        key = " · ".join(f'<span style="color: {c}">{t}</span>' for t, c in (
            ("level", "#ffaa28"), ("floor", "#50aaff"), ("on ×", "#78dc78"), ("off ×", "#e65ac8"),
            ("level threshold", "#b4b4b4")))
        self.level_plot = self.addPlot(row=1, col=0, title=key)  # the key as the title: no legend on data
        self.level_plot.setLogMode(y=True)
        self.level_curve = self.level_plot.plot(pen=pg.mkPen((255, 170, 40), width=2))
        self.floor_curve = self.level_plot.plot(pen=pg.mkPen((80, 170, 255), width=2))
        self.on_curve = self.level_plot.plot(pen=pg.mkPen((120, 220, 120), style=Qt.DashLine))
        self.off_curve = self.level_plot.plot(pen=pg.mkPen((230, 90, 200), style=Qt.DotLine))
        self.min_curve = self.level_plot.plot(pen=pg.mkPen((180, 180, 180), style=Qt.DashDotLine))
        self.signal_plot = self.addPlot(row=2, col=0, title="VAD signal (× resets)")
        self.signal_plot.setYRange(-0.1, 1.2, padding=0)
        self.signal_curve = self.signal_plot.plot(pen=pg.mkPen((120, 220, 120), width=2), stepMode="center",
                                                  fillLevel=0, brush=(120, 220, 120, 60))
        self.reset_points = self.signal_plot.plot(pen=None, symbol="x", symbolSize=10, symbolBrush=(240, 80, 80),
                                                  symbolPen=pg.mkPen((240, 80, 80)))
        for p in (self.level_plot, self.signal_plot):
            p.setXLink(self.spec_plot)
        for p in (self.spec_plot, self.level_plot, self.signal_plot):
            p.setMenuEnabled(False)
            p.hideButtons()
            p.getAxis("left").setWidth(52)  # equal widths: the linked time axes line up
            p.enableAutoRange(x=False)  # the clip's length sets the time range
        self.signal_plot.setLabel("bottom", "time", units="s")
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 3)
        self.ci.layout.setRowStretchFactor(2, 1)

    def show_features(self, features: np.ndarray, frame_duration_s: float) -> None:
        img = to_display(features)
        self.image.setImage(img, autoLevels=False, levels=DISPLAY_LEVELS_DB)
        n, bins = img.shape
        self.image.setRect(QRectF(0.0, 0.0, n * frame_duration_s, float(bins)))
        self.spec_plot.setYRange(0, bins, padding=0)
        self.spec_plot.setXRange(0, n * frame_duration_s, padding=0)

    def show_trace(self, trace: VadTrace) -> None:
        lv, floors, fd, c = trace.levels, trace.floors, trace.frame_duration_s, trace.params.vad
        t = np.arange(len(lv)) * fd
        self.level_curve.setData(t, np.maximum(lv, TINY))
        self.floor_curve.setData(t, np.maximum(floors, TINY))
        self.on_curve.setData(t, np.maximum(c.threshold_up * floors, TINY))
        self.off_curve.setData(t, np.maximum(c.threshold_down * floors, TINY))
        self.min_curve.setData([t[0], t[-1] + fd], [max(c.level_threshold, TINY)] * 2)
        self.signal_curve.setData(np.append(t, t[-1] + fd), trace.signals.astype(float))
        resets = trace.resets
        self.reset_points.setData(resets * fd, np.full(len(resets), 0.5))
        self.spec_plot.setXRange(0.0, len(lv) * fd, padding=0)
