"""Clips as cards (a spectrogram thumbnail and a few lines of text) in one virtualised list view,
shared by the Collect and Dataset browser panels.

`ClipModel` holds frozen `Card`s; a card's thumbnail is asked for only when the view paints it
(`DecorationRole`), and made by `ThumbnailLoader` on its own thread (newest request first, so the
cards in view come before those scrolled past), then cached. Nothing on the GUI thread reads a
file or runs the featurizer; thousands of cards cost one `Card` each until they are seen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, QThread, pyqtSignal
from PyQt5.QtGui import QColor, QImage, QPixmap
from PyQt5.QtWidgets import QAbstractItemView, QListView

from core.graph.ir import Graph
from kwsgui.plots import DISPLAY_LEVELS_DB, SPECTROGRAM_CMAP, to_display

THUMB_SIZE = QSize(112, 64)
CACHE_THUMBS = 3000  # pixmaps kept (~30 KB each)
FLAGGED = QColor("#b03030")


@dataclass(frozen=True)
class Card:
    path: str
    label: str
    lines: tuple[str, ...] = ()  # shown under the label, e.g. ("0.62 s", "-18 dB")
    flags: tuple[str, ...] = ()
    suspicion: float = 0.0

    @property
    def text(self) -> str:
        """The label and three lines (blank ones too: every card has the same size, which the view
        assumes to lay out thousands at once)."""
        rows = [self.label, *self.lines[:2], *([""] * (2 - len(self.lines[:2]))), ", ".join(self.flags)]
        return "\n".join(rows)


def thumbnail_rgb(features: np.ndarray) -> np.ndarray:
    """(frames, n_features) features -> (n_features, frames, 3) uint8 RGB, low frequencies at the
    bottom, coloured like the live spectrogram (same display scale and colour map)."""
    lo, hi = DISPLAY_LEVELS_DB
    lut = pg.colormap.get(SPECTROGRAM_CMAP).getLookupTable(nPts=256, alpha=False)  # (256, 3) uint8
    d = to_display(features)
    idx = np.clip((d - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(lut[idx.T[::-1]])


def to_pixmap(rgb: np.ndarray, size: QSize = THUMB_SIZE) -> QPixmap:
    h, w, _ = rgb.shape
    img = QImage(rgb.tobytes(), w, h, 3 * w, QImage.Format_RGB888).copy()
    return QPixmap.fromImage(img.scaled(size, Qt.IgnoreAspectRatio, Qt.SmoothTransformation))


class ThumbnailLoader(QThread):
    """Reads clips and makes their thumbnails off the GUI thread; `ready(path, rgb)` for each."""

    ready = pyqtSignal(str, object)  # path, (h, w, 3) uint8 read-only
    failed = pyqtSignal(str, str)  # path, why

    def __init__(self, featurizer: Graph, parent=None):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._stop = False
        self._featurizer = featurizer
        self.made = 0

    def set_featurizer(self, featurizer: Graph) -> None:
        with self._cond:
            self._featurizer = featurizer

    def request(self, path: str) -> None:
        with self._cond:
            if path in self._queued:
                self._queue.remove(path)  # asked again: to the front
            self._queue.append(path)
            self._queued.add(path)
            self._cond.notify()

    def forget(self) -> None:
        """Drop every request not started yet (a new folder)."""
        with self._cond:
            self._queue.clear()
            self._queued.clear()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(5000)

    def run(self) -> None:
        from core.audio.wav import read_wav
        from core.errors import KwsError
        from core.graph.interpreter import Interpreter

        rt, graph = None, None
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                path = self._queue.pop()  # newest first
                self._queued.discard(path)
                if graph is not self._featurizer:
                    graph, rt = self._featurizer, Interpreter(self._featurizer)
            try:
                sr = int(graph.metadata.get("sample_rate") or 16000)
                x, _ = read_wav(path, sr)
                rt.reset()
                n = len(x) // rt.input_size
                feats = rt.run(x[: n * rt.input_size].reshape(n, -1)) if n else np.zeros((1, rt.output_size))
                rgb = thumbnail_rgb(feats)
                rgb.setflags(write=False)
                self.made += 1
                self.ready.emit(path, rgb)
            except (KwsError, OSError, ValueError) as e:
                self.failed.emit(path, str(e))


class ClipModel(QAbstractListModel):
    """Cards in display order; thumbnails asked for lazily through the loader."""

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.cards: list[Card] = []
        self._row: dict[str, int] = {}
        self._thumbs: OrderedDict[str, QPixmap] = OrderedDict()
        self._asked: set[str] = set()
        self._blank = QPixmap(THUMB_SIZE)
        self._blank.fill(QColor("#202028"))
        self.loader = loader
        loader.ready.connect(self._thumb_ready)

    # Qt model API
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.cards)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self.cards):
            return None
        c = self.cards[index.row()]
        if role == Qt.DisplayRole:
            return c.text
        if role == Qt.DecorationRole:
            pm = self._thumbs.get(c.path)
            if pm is None:
                if c.path not in self._asked:
                    self._asked.add(c.path)
                    self.loader.request(c.path)
                return self._blank
            self._thumbs.move_to_end(c.path)
            return pm
        if role == Qt.ToolTipRole:
            return c.path + (f"\n{', '.join(c.flags)}" if c.flags else "")
        if role == Qt.ForegroundRole and c.flags:
            return FLAGGED
        if role == Qt.UserRole:
            return c
        return None

    # changes
    def _reindex(self) -> None:
        self._row = {c.path: i for i, c in enumerate(self.cards)}

    def set_cards(self, cards: list[Card]) -> None:
        self.beginResetModel()
        self.cards = list(cards)
        self._reindex()
        self.endResetModel()

    def add(self, cards: list[Card], front: bool = False) -> None:
        if not cards:
            return
        at = 0 if front else len(self.cards)
        self.beginInsertRows(QModelIndex(), at, at + len(cards) - 1)
        self.cards[at:at] = cards
        self._reindex()
        self.endInsertRows()

    def remove(self, path: str) -> None:
        i = self._row.get(path)
        if i is None:
            return
        self.beginRemoveRows(QModelIndex(), i, i)
        del self.cards[i]
        self._reindex()
        self.endRemoveRows()
        self._thumbs.pop(path, None)

    def replace(self, old_path: str, card: Card) -> None:
        i = self._row.get(old_path)
        if i is None:
            return
        self.cards[i] = card
        if card.path != old_path and old_path in self._thumbs:
            self._thumbs[card.path] = self._thumbs.pop(old_path)
            self._asked.add(card.path)
        self._reindex()
        self.dataChanged.emit(self.index(i), self.index(i))

    def sort_cards(self, key, reverse: bool = False) -> None:
        self.set_cards(sorted(self.cards, key=key, reverse=reverse))

    def card(self, row: int) -> Card:
        return self.cards[row]

    def row_of(self, path: str) -> int | None:
        return self._row.get(path)

    def has_thumbnail(self, path: str) -> bool:
        return path in self._thumbs

    def _thumb_ready(self, path: str, rgb) -> None:
        self._thumbs[path] = to_pixmap(rgb)
        while len(self._thumbs) > CACHE_THUMBS:
            old, _ = self._thumbs.popitem(last=False)
            self._asked.discard(old)  # asked again if it comes back into view
        i = self._row.get(path)
        if i is not None:
            self.dataChanged.emit(self.index(i), self.index(i), [Qt.DecorationRole])


class ClipView(QListView):
    """Cards in a wrapping grid (icon mode); several can be selected."""

    def __init__(self, model: ClipModel, parent=None):
        super().__init__(parent)
        self.setModel(model)
        self.setViewMode(QListView.IconMode)
        self.setResizeMode(QListView.Adjust)
        self.setMovement(QListView.Static)
        self.setUniformItemSizes(True)
        self.setIconSize(THUMB_SIZE)
        line = self.fontMetrics().lineSpacing()
        self.setGridSize(QSize(THUMB_SIZE.width() + 44, THUMB_SIZE.height() + 5 * line + 8))  # label + 3 lines
        self.setWordWrap(True)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setLayoutMode(QListView.Batched)  # thousands of rows are laid out in slices
        self.setBatchSize(200)

    def selected_cards(self) -> list[Card]:
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        return [self.model().card(r) for r in rows]

    def select_path(self, path: str) -> None:
        row = self.model().row_of(path)
        if row is not None:
            self.setCurrentIndex(self.model().index(row))


def relabelled(card: Card, path: Path, label: str) -> Card:
    return replace(card, path=str(path), label=label, flags=tuple(f for f in card.flags if f != "disagrees"))


def add_card_view(panel, featurizer: Graph):
    """The card list every clip panel shares: on `panel` a thumbnail loader (started), model, view,
    player and the Play / Delete / Relabel controls, wired to the panel's play_selected,
    delete_selected and relabel_selected; returns the row of controls (a QHBoxLayout)."""
    from PyQt5.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton

    from kwsgui.panel import ClipPlayer

    panel.loader = ThumbnailLoader(featurizer, panel)
    panel.loader.start()
    panel.model = ClipModel(panel.loader, panel)
    panel.view = ClipView(panel.model)
    panel.view.doubleClicked.connect(lambda _i: panel.play_selected())
    panel.player = ClipPlayer(panel)
    panel.player.failed.connect(panel.show_error)
    panel.play_button = QPushButton("▶  Play")
    panel.play_button.clicked.connect(panel.play_selected)
    panel.delete_button = QPushButton("✕  Delete")
    panel.delete_button.clicked.connect(panel.delete_selected)
    panel.relabel_edit = QLineEdit()
    panel.relabel_edit.setPlaceholderText("new label")
    panel.relabel_button = QPushButton("Relabel")
    panel.relabel_button.clicked.connect(panel.relabel_selected)
    actions = QHBoxLayout()
    for w in (panel.play_button, panel.delete_button, QLabel("to"), panel.relabel_edit, panel.relabel_button):
        actions.addWidget(w)
    actions.addStretch(1)
    return actions


class CardActions:
    """Play / Delete / Relabel of the selected cards, for a panel built with add_card_view that has
    `folder` (its clip folder field), `list_dir()`, `show_error()`. Hooks: `_card_deleted(path)`,
    `_card_relabelled(card, new_path, label)`, `_cards_changed()` (after a batch)."""

    def play_selected(self) -> None:
        cards = self.view.selected_cards()
        if cards:
            self.player.play(cards[0].path)

    def delete_selected(self) -> None:
        from core.data.curate import delete_clip
        from core.errors import KwsError

        for c in self.view.selected_cards():
            try:
                delete_clip(c.path, list_dir=self.list_dir())
            except KwsError as e:
                self.show_error(str(e))
                continue
            self._card_deleted(c.path)
        self._cards_changed()

    def relabel_selected(self) -> None:
        from core.data.curate import relabel_clip, safe_label
        from core.errors import KwsError

        try:
            label = safe_label(self.relabel_edit.text())
        except KwsError as e:
            self.show_error(f"Relabel: {e}")
            return
        for c in self.view.selected_cards():
            try:
                new = relabel_clip(c.path, label, root=self.folder.path(), list_dir=self.list_dir())
            except KwsError as e:
                self.show_error(str(e))
                continue
            self._card_relabelled(c, new, label)
        self._cards_changed()

    def _card_deleted(self, path: str) -> None:
        self.model.remove(path)

    def _card_relabelled(self, card: Card, new: Path, label: str) -> None:
        self.model.replace(card.path, relabelled(card, new, label))

    def _cards_changed(self) -> None:
        pass

    def shutdown(self, timeout_ms: int = 60_000) -> None:
        super().shutdown(timeout_ms)
        self.player.stop()
        self.loader.stop()
