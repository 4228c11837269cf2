"""Small widgets the panels share: a one-line elided label, an error banner that keeps its line,
path fields, a level meter with a clipping light, an LED, a slider with a numeric box. The panel
base and job bar are in kwsgui.panel."""

from __future__ import annotations

import math
from pathlib import Path

from PyQt5.QtCore import QRectF, QSettings, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QWidget,
)

ERROR_STYLE = "color: #e04040; font-weight: bold;"
NOTE_STYLE = "color: #808080;"


class ElidedLabel(QLabel):
    """One line of text that never changes the layout: as tall as one line, as wide as it is given
    (it asks for no width), the text elided (…) to fit, the whole of it in the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None, *, elide=Qt.ElideMiddle):
        super().__init__(parent)
        self.elide = elide
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)
        self.update()

    def sizeHint(self) -> QSize:
        m = self.contentsMargins()
        return QSize(self.fontMetrics().horizontalAdvance(self.text()) + m.left() + m.right(),
                     self.fontMetrics().height() + m.top() + m.bottom())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.sizeHint().height())

    def elided_text(self) -> str:
        """The text as drawn now."""
        return self.fontMetrics().elidedText(self.text(), self.elide, max(0, self.contentsRect().width()))

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        self.style().drawItemText(p, self.contentsRect(), int(Qt.AlignLeft | Qt.AlignVCenter), self.palette(),
                                  self.isEnabled(), self.elided_text(), self.foregroundRole())


class ErrorBanner(ElidedLabel):
    """One red line of the panel's current error. Its line is kept while there is none, so showing
    or clearing an error never moves the controls; a long error is elided (the tooltip and the
    status bar have all of it)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("", parent)
        self.setStyleSheet(ERROR_STYLE)
        sp = self.sizePolicy()
        sp.setRetainSizeWhenHidden(True)
        self.setSizePolicy(sp)
        self.hide()

    def show_error(self, text: str) -> None:
        self.setText(text)
        self.show()

    def clear_error(self) -> None:
        self.setText("")
        self.hide()


class PathField(QWidget):
    """A path line edit with a Browse button; remembers its value under `key` in settings."""

    changed = pyqtSignal(str)

    def __init__(self, settings: QSettings, key: str, *, mode: str = "open", caption: str = "",
                 filt: str = "All files (*)", default: str = "", placeholder: str = ""):
        super().__init__()
        if mode not in ("open", "save", "dir"):
            raise ValueError(f"mode must be open, save or dir, got {mode!r}")
        self.settings, self.key, self.mode, self.caption, self.filt = settings, key, mode, caption, filt
        self.edit = QLineEdit(str(settings.value(key, default) or default))
        self.edit.setPlaceholderText(placeholder)
        self.edit.editingFinished.connect(self._edited)
        self.button = QPushButton("Browse…")
        self.button.clicked.connect(self.browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(self.button)

    def text(self) -> str:
        return self.edit.text().strip()

    def path(self) -> Path | None:
        t = self.text()
        return Path(t) if t else None

    def set_path(self, path: str | Path) -> None:
        self.edit.setText(str(path))
        self._edited()

    def _edited(self) -> None:
        self.settings.setValue(self.key, self.text())
        self.changed.emit(self.text())

    def browse(self) -> None:
        start = self.text() or str(self.settings.value("dirs/last", "") or "")
        if self.mode == "dir":
            path = QFileDialog.getExistingDirectory(self, self.caption, start)
        elif self.mode == "save":
            path, _ = QFileDialog.getSaveFileName(self, self.caption, start, self.filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self.caption, start, self.filt)
        if path:
            self.settings.setValue("dirs/last", str(Path(path).parent if self.mode != "dir" else path))
            self.set_path(path)


class Led(QWidget):
    """A round light: on (colour) or off (dark)."""

    def __init__(self, colour: str = "#40d040", diameter: int = 14, tooltip: str = ""):
        super().__init__()
        self.colour, self.on = QColor(colour), False
        self.setFixedSize(diameter + 2, diameter + 2)
        self.setToolTip(tooltip)

    def set_on(self, on: bool) -> None:
        if bool(on) != self.on:
            self.on = bool(on)
            self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QColor(30, 30, 30))
        p.setBrush(self.colour if self.on else QColor(60, 60, 60))
        p.drawEllipse(QRectF(1, 1, self.width() - 2, self.height() - 2))


class LevelMeter(QWidget):
    """A horizontal input level bar in dBFS (-60 .. 0) with a peak-hold tick and a clip light."""

    FLOOR_DB = -60.0

    def __init__(self):
        super().__init__()
        self.level_db = self.FLOOR_DB
        self.peak_db = self.FLOOR_DB
        self.clipped = False
        self.setMinimumSize(120, 16)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("input level (peak, dBFS); the right end lights red when samples clip")

    def set_level(self, level_db: float, clipped: bool) -> None:
        lv = max(self.FLOOR_DB, min(0.0, level_db if math.isfinite(level_db) else self.FLOOR_DB))
        self.level_db = lv
        self.peak_db = max(lv, self.peak_db - 1.0)  # falls back 1 dB per update
        self.clipped = bool(clipped) or (self.clipped and lv > -1.0)
        self.update()

    def reset(self) -> None:
        self.level_db = self.peak_db = self.FLOOR_DB
        self.clipped = False
        self.update()

    def _x(self, db: float, width: float) -> float:
        return width * (db - self.FLOOR_DB) / -self.FLOOR_DB

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        w, h = self.width() - 14, self.height()
        p.fillRect(0, 0, w, h, QColor(40, 40, 40))
        x = self._x(self.level_db, w)
        for lo, hi, colour in ((-60.0, -12.0, "#40b040"), (-12.0, -3.0, "#d0c030"), (-3.0, 0.0, "#e04040")):
            a, b = self._x(lo, w), min(self._x(hi, w), x)
            if b > a:
                p.fillRect(QRectF(a, 2, b - a, h - 4), QColor(colour))
        px = self._x(self.peak_db, w)
        p.fillRect(QRectF(max(0.0, px - 1), 1, 2, h - 2), QColor(230, 230, 230))
        p.fillRect(w + 2, 1, 12, h - 2, QColor("#ff2020") if self.clipped else QColor(70, 30, 30))


class NumberBox(QDoubleSpinBox):
    """A spin box showing `digits` significant digits (1.2e-05, 3.5527), not fixed decimals;
    with `log`, the arrows step by a factor of 1.1 instead of a fixed amount."""

    def __init__(self, digits: int = 5, log: bool = False):
        super().__init__()
        self.digits, self.log = digits, log
        self.setDecimals(12)

    def textFromValue(self, v: float) -> str:
        return f"{v:.{self.digits}g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        from PyQt5.QtGui import QValidator

        try:
            float(text)
            return QValidator.Acceptable, text, pos
        except ValueError:
            return QValidator.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        if self.log and self.value() > 0:
            self.setValue(self.value() * 1.1**steps)
        else:
            super().stepBy(steps)


class SliderBox(QWidget):
    """A slider and a numeric box showing the same float; log-scaled for positive ranges. The
    value is kept exactly as set (the box only displays it rounded)."""

    valueChanged = pyqtSignal(float)
    STEPS = 1000

    def __init__(self, lo: float, hi: float, value: float, *, log: bool = False, digits: int = 5):
        super().__init__()
        if log and lo <= 0:
            raise ValueError(f"a log slider needs lo > 0, got {lo}")
        self.lo, self.hi, self.log = float(lo), float(hi), log
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, self.STEPS)
        self.box = NumberBox(digits, log)
        self.box.setRange(lo, hi)
        self.box.setSingleStep((hi - lo) / 100)
        self.box.setKeyboardTracking(False)
        self.box.setMinimumWidth(90)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.box)
        self._sync = False
        self._value = float(value)
        self.slider.valueChanged.connect(self._slid)
        self.box.valueChanged.connect(self._typed)
        self.set_value(value)

    def _to_pos(self, v: float) -> int:
        if self.log:
            t = (math.log(max(v, self.lo)) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return int(round(min(1.0, max(0.0, t)) * self.STEPS))

    def _from_pos(self, pos: int) -> float:
        t = pos / self.STEPS
        if self.log:
            return math.exp(math.log(self.lo) + t * (math.log(self.hi) - math.log(self.lo)))
        return self.lo + t * (self.hi - self.lo)

    def value(self) -> float:
        return self._value

    def set_value(self, v: float) -> None:
        self._sync = True
        try:
            self._value = float(v)
            self.box.setValue(v)
            self.slider.setValue(self._to_pos(v))
        finally:
            self._sync = False

    def _slid(self, pos: int) -> None:
        if self._sync:
            return
        self._sync = True
        try:
            self._value = self._from_pos(pos)
            self.box.setValue(self._value)
        finally:
            self._sync = False
        self.valueChanged.emit(self._value)

    def _typed(self, v: float) -> None:
        if self._sync:
            return
        self._sync = True
        try:
            self._value = float(v)
            self.slider.setValue(self._to_pos(v))
        finally:
            self._sync = False
        self.valueChanged.emit(self._value)


def boxed(title: str, *widgets_or_layouts) -> QWidget:
    """A QGroupBox with a vertical layout of the given widgets/layouts."""
    from PyQt5.QtWidgets import QGroupBox, QLayout, QVBoxLayout

    box = QGroupBox(title)
    lay = QVBoxLayout(box)
    for w in widgets_or_layouts:
        if isinstance(w, QLayout):
            lay.addLayout(w)
        else:
            lay.addWidget(w)
    return box


def vertical_scroll(widget: QWidget, frame: bool = False):
    """`widget` in a scroll area that scrolls vertically only and is wide enough not to clip it."""
    from PyQt5.QtWidgets import QScrollArea

    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(widget)
    if not frame:
        scroll.setFrameShape(QScrollArea.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setMinimumWidth(widget.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
    return scroll


def split_panel(panel: QWidget, left: QWidget, right: QWidget, sizes: tuple[int, int], header=()):
    """A panel's standard layout: header rows, its error banner, left | right, its job bar."""
    from PyQt5.QtWidgets import QLayout, QSplitter, QVBoxLayout

    split = QSplitter()
    split.addWidget(left)
    split.addWidget(right)
    split.setSizes(list(sizes))
    lay = QVBoxLayout(panel)
    for h in header:
        if isinstance(h, QLayout):
            lay.addLayout(h)
        else:
            lay.addWidget(h)
    lay.addWidget(panel.error)
    lay.addWidget(split, 1)
    lay.addWidget(panel.job_bar)
    return split
