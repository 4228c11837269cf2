"""Browse panel: a dataset browser over a folder of word folders. Check runs on the panel's job (in
a child process, like dataset builds) and measures every clip (core.data.curate: silent, no word,
too quiet, clipped, too long/short, duplicate, and "disagrees" when the live view's classifier
gives another of its labels); cards arrive while it runs. Per class or all, sorted by suspicion (or
name, level, length), only the flagged ones if asked; play, delete or relabel a card (the file
moves or goes, and the lists of the lists folder follow). Thumbnails are made only for the cards
painted, on the loader's thread, so a folder of thousands of clips scrolls without waiting."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.data.curate import (
    ClipInfo,
    by_suspicion,
    find_duplicates,
    flag,
    inspect_clip,
    lists_in,
    unreadable,
)
from core.data.segment import Framing
from core.errors import KwsError
from kwsgui.clip_cards import Card, CardActions, add_card_view
from kwsgui.model_set import ModelSet
from kwsgui.panel import Panel
from kwsgui.subproc import run_in_child
from kwsgui.widgets import NOTE_STYLE, PathField, boxed

BATCH_S = 0.25  # cards reach the view at most 4 times a second while checking
SORTS = ("suspicion", "name", "level", "length")
ALL = "all classes"


def scan_clips(root: str, featurizer, classifier, categories: tuple[str, ...], ctx) -> tuple[ClipInfo, ...]:
    """Every clip of ROOT/*/ inspected and flagged (partial batches as it goes), then all of them with
    the duplicates marked. Runs in a child process (kwsgui.subproc): the GUI keeps its interpreter lock."""
    import os

    from core.evaluate.passrate import labelled_clips
    from core.pipeline import KeywordSpotter

    clips = labelled_clips(root)
    ctx.log(f"checking {len(clips)} clips in process {os.getpid()}")
    framing = Framing.of(featurizer)
    spotter = KeywordSpotter(featurizer, classifier) if classifier is not None else None
    infos: list[ClipInfo] = []
    batch: list[ClipInfo] = []
    last = time.monotonic()
    for k, (path, label) in enumerate(clips):
        ctx.check()
        try:
            info = flag(inspect_clip(path, label, framing, spotter, categories), categories=categories)
        except KwsError as e:
            info = unreadable(path, label, str(e))
        infos.append(info)
        batch.append(info)
        if time.monotonic() - last >= BATCH_S:
            ctx.partial(tuple(batch))
            batch, last = [], time.monotonic()
        ctx.progress(k + 1, len(clips), "clips checked")
    dups = find_duplicates(infos)
    return tuple(flag(i, categories=categories, duplicate=True) if i.path in dups else i for i in infos)


def card_of(info: ClipInfo) -> Card:
    if "unreadable" in info.flags:
        return Card(str(info.path), info.label, (info.problem[-40:],), info.flags, info.suspicion)
    word = f"word {info.word_s:.2f} s · {info.level_db:.0f} dB" if info.words else f"{info.duration_s:.2f} s, no word"
    lines = [word]
    if info.predicted is not None:
        lines.append(f"heard: {info.predicted} {info.probability:.2f}")
    return Card(str(info.path), info.label, tuple(lines), info.flags, info.suspicion)


def sort_key(name: str):
    return {"suspicion": lambda i: (-i.suspicion, str(i.path)), "name": lambda i: str(i.path),
            "level": lambda i: (i.level_db, str(i.path)), "length": lambda i: (i.word_s, str(i.path))}[name]


class BrowserPanel(CardActions, Panel):
    title = "Browse"

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        s = settings
        self.infos: list[ClipInfo] = []
        self.folder = PathField(s, "browse/folder", mode="dir", caption="Folder of word folders",
                                placeholder="FOLDER/word/*.wav (Speech Commands layout)")
        self.lists_dir = PathField(s, "browse/lists", mode="dir", caption="Lists folder",
                                   placeholder="optional: the lists to keep in step (default: the folder's own)")
        self.check_button = QPushButton("Check clips")
        self.check_button.clicked.connect(self.check)
        self.model_note = QLabel("")
        self.model_note.setStyleSheet(NOTE_STYLE)
        self.class_combo = QComboBox()
        self.class_combo.addItem(ALL)
        self.class_combo.currentIndexChanged.connect(lambda _i: self.refresh())
        self.sort_combo = QComboBox()
        self.sort_combo.addItems([f"by {n}" for n in SORTS])
        self.sort_combo.currentIndexChanged.connect(lambda _i: self.refresh())
        self.flagged_box = QCheckBox("only flagged")
        self.flagged_box.toggled.connect(lambda _on: self.refresh())
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Folder", self.folder)
        form.addRow("Lists", self.lists_dir)
        top = QHBoxLayout()
        top.addWidget(self.check_button)
        top.addWidget(self.model_note, 1)
        filt = QHBoxLayout()
        for w in (QLabel("Show"), self.class_combo, self.sort_combo, self.flagged_box):
            filt.addWidget(w)
        filt.addStretch(1)

        actions = add_card_view(self, (live.models if live is not None else ModelSet.builtin()).featurizer)

        lay = QVBoxLayout(self)
        lay.addWidget(self.error)
        lay.addWidget(boxed("Dataset folder", form, top, filt, self.summary))
        lay.addWidget(self.view, 1)
        lay.addLayout(actions)
        lay.addWidget(self.job_bar)
        if live is not None:
            live.models_changed.connect(self._models_changed)
        self._models_changed(live.models if live is not None else None)

    # ------------------------------------------------------------------ models
    def _models(self) -> ModelSet:
        return self.live.models if self.live is not None else ModelSet.builtin()

    def _models_changed(self, models) -> None:
        m = models or ModelSet.builtin()
        self.loader.set_featurizer(m.featurizer)
        self.model_note.setText(f"the live view's classifier ({len(m.labels)} classes) checks the labels"
                                if m.classifier is not None else "no classifier loaded: labels are not checked")

    # ------------------------------------------------------------------ checking
    def set_busy(self, busy: bool) -> None:
        for w in (self.check_button, self.folder, self.delete_button, self.relabel_button):
            w.setEnabled(not busy)

    def check(self) -> bool:
        root = self.folder.path()
        if root is None or not root.is_dir():
            self.show_error(f"{root or 'Folder'}: choose a folder of word folders")
            return False
        m = self._models()
        cats = tuple(m.labels) if m.classifier is not None else ()
        self.infos = []
        self.loader.forget()
        self.model.set_cards([])
        args = (str(root), m.featurizer, m.classifier, cats)
        return self.run_job("Check", lambda ctx: run_in_child(scan_clips, args, ctx), on_partial=self._batch,
                            on_result=self._checked, on_log=self.message.emit)

    def _batch(self, infos: tuple[ClipInfo, ...]) -> None:
        self.infos.extend(infos)
        self.model.add([card_of(i) for i in infos])
        self._update_summary()

    def _checked(self, infos: tuple[ClipInfo, ...]) -> None:
        self.infos = list(infos)
        labels = sorted({i.label for i in infos})
        current = self.class_combo.currentText()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems([ALL] + labels)
        self.class_combo.setCurrentText(current if current in labels else ALL)
        self.class_combo.blockSignals(False)
        self.refresh()

    def shown(self) -> list[ClipInfo]:
        """The clips the filters let through, in the chosen order."""
        cls = self.class_combo.currentText()
        only_flagged = self.flagged_box.isChecked()
        out = [i for i in self.infos if (cls == ALL or i.label == cls) and (i.flags or not only_flagged)]
        name = SORTS[self.sort_combo.currentIndex()]
        return by_suspicion(out) if name == "suspicion" else sorted(out, key=sort_key(name))

    def refresh(self) -> None:
        self.model.set_cards([card_of(i) for i in self.shown()])
        self._update_summary()

    def _update_summary(self) -> None:
        flags = Counter(f for i in self.infos for f in i.flags)
        per = Counter(i.label for i in self.infos)
        flagged = sum(1 for i in self.infos if i.flags)
        self.summary.setText(
            f"{len(self.infos)} clips in {len(per)} classes ({', '.join(f'{k} {v}' for k, v in sorted(per.items()))}); "
            f"{flagged} flagged" + (": " + ", ".join(f"{k} {v}" for k, v in flags.most_common()) if flags else ""))

    # ------------------------------------------------------------------ card actions
    def list_dir(self) -> Path | None:
        d = self.lists_dir.path() or self.folder.path()
        return d if d is not None and lists_in(d) else None

    def _info(self, path: str) -> int | None:
        return next((k for k, i in enumerate(self.infos) if str(i.path) == path), None)

    def _card_deleted(self, path: str) -> None:
        k = self._info(path)
        if k is not None:
            del self.infos[k]
        self.model.remove(path)

    def _card_relabelled(self, card: Card, new: Path, label: str) -> None:
        k = self._info(card.path)
        if k is not None:
            m = self._models()
            cats = tuple(m.labels) if m.classifier is not None else ()
            info = self.infos[k]
            keep = tuple(f for f in info.flags if f != "disagrees")
            self.infos[k] = flag(replace(info, path=new, label=label, flags=keep), categories=cats,
                                 duplicate="duplicate" in keep)
            self.model.replace(card.path, card_of(self.infos[k]))

    def _cards_changed(self) -> None:
        self._update_summary()
