"""Collect panel: type a label, press Record and say the word again and again. Each word is cut out as
it is said (core.data.segment: energy above the noise floor, framed like the featurizer, a 1 s clip
centred on the word), written at once to FOLDER/LABEL/SPEAKER_nohash_N.wav and shown as a card
(spectrogram, length, level). Cards can be played, deleted or given another label; the counts per
label are those of the folder, which `kws lists` / the Dataset panel take as it is. Import cuts an
existing long recording the same way. Recording and importing run on the panel's job (PyAudio
capture, segmentation and writing never touch the GUI thread); Stop keeps every word said so far."""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.audio.formats import DIALOG_FILTER
from core.data.curate import label_counts, lists_in
from core.data.segment import Framing, SegmentConfig, collect_words, file_chunks, safe_label, speaker_name
from core.errors import KwsError
from kwsgui.clip_cards import Card, CardActions, add_card_view
from kwsgui.model_set import ModelSet
from kwsgui.panel import Panel
from kwsgui.widgets import NOTE_STYLE, LevelMeter, PathField, boxed

LEVEL_INTERVAL_S = 0.08  # level meter updates from the job (~12 a second)


@dataclass(frozen=True)
class WordSaved:
    path: str
    label: str
    start_s: float
    duration_s: float
    level_db: float
    snr_db: float


@dataclass(frozen=True)
class InputLevel:
    peak_db: float


def word_card(w: WordSaved) -> Card:
    return Card(w.path, w.label, (f"{w.duration_s:.2f} s · {w.level_db:.0f} dB", f"+{w.snr_db:.0f} dB over noise"))


def _collect(ctx, chunks, framing: Framing, root: str, label: str, speaker: str) -> int:
    """The job: segment `chunks`, write each word, report words and input levels."""
    last = [0.0]

    def on_word(u, path):
        ctx.partial(WordSaved(str(path), label, u.start_s, u.duration_s, u.level_db, u.snr_db))

    def on_level(db):
        now = time.monotonic()
        if now - last[0] >= LEVEL_INTERVAL_S:
            last[0] = now
            ctx.partial(InputLevel(db))

    found = collect_words(chunks, framing, SegmentConfig(), outdir=root, label=label, speaker=speaker,
                          cancel=ctx.cancel, on_word=on_word, on_level=on_level)
    return len(found)


def record_job(framing: Framing, root: str, label: str, speaker: str, seconds: float | None):
    def fn(ctx):
        from core.audio.microphone import MicrophoneSource

        with MicrophoneSource(framing.sample_rate, max_seconds=seconds) as mic:
            ctx.log(f"recording from {mic.name}")
            return _collect(ctx, mic.chunks(), framing, root, label, speaker)
    return fn


def import_job(path: str, framing: Framing, root: str, label: str, speaker: str):
    def fn(ctx):
        chunks = file_chunks(path, framing, progress=lambda d, t: ctx.progress(d, t, "seconds cut"))
        return _collect(ctx, chunks, framing, root, label, speaker)
    return fn


class CollectPanel(CardActions, Panel):
    title = "Collect"

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        s = settings
        self.label_edit = QLineEdit(str(s.value("collect/label", "")))
        self.label_edit.setPlaceholderText("the word you will say, e.g. hello")
        self.label_edit.editingFinished.connect(self.reload)  # the cards of that label's clips
        self.speaker_edit = QLineEdit(str(s.value("collect/speaker", "") or speaker_name(getpass.getuser())))
        self.speaker_edit.setToolTip("Goes into the file names (SPEAKER_nohash_N.wav); `kws lists` keeps one "
                                     "speaker's clips in one split")
        self.folder = PathField(s, "collect/folder", mode="dir", caption="Folder of word folders",
                                placeholder="clips go to FOLDER/LABEL/*.wav")
        self.folder.changed.connect(lambda _t: self.reload())
        self.record_button = QPushButton("●  Record")
        self.record_button.setToolTip("Say the word again and again, with a short pause between; Stop ends")
        self.record_button.clicked.connect(self.record)
        self.limit_spin = QDoubleSpinBox()
        self.limit_spin.setRange(0.0, 3600.0)
        self.limit_spin.setDecimals(1)
        self.limit_spin.setSuffix(" s")
        self.limit_spin.setSpecialValueText("until Stop")
        self.limit_spin.setValue(float(s.value("collect/limit_s", 0.0)))
        self.import_button = QPushButton("Import long recording…")
        self.import_button.clicked.connect(self.choose_import)
        self.meter = LevelMeter()
        form = QFormLayout()
        form.addRow("Label", self.label_edit)
        form.addRow("Speaker", self.speaker_edit)
        form.addRow("Folder", self.folder)
        row = QHBoxLayout()
        row.addWidget(self.record_button)
        row.addWidget(QLabel("stop after"))
        row.addWidget(self.limit_spin)
        row.addWidget(self.import_button)
        row.addWidget(self.meter, 1)
        self.counts_label = QLabel("")
        self.counts_label.setWordWrap(True)
        self.session_label = QLabel("")
        self.session_label.setStyleSheet(NOTE_STYLE)

        actions = add_card_view(self, (live.models if live is not None else ModelSet.builtin()).featurizer)
        actions.addWidget(self.session_label)

        lay = QVBoxLayout(self)
        lay.addWidget(self.error)
        lay.addWidget(boxed("Collect a word", form, row, self.counts_label))
        lay.addWidget(self.view, 1)
        lay.addLayout(actions)
        lay.addWidget(self.job_bar)
        if live is not None:
            live.models_changed.connect(lambda m: self.loader.set_featurizer(m.featurizer))
        self.session_words = 0
        self.reload()

    # ------------------------------------------------------------------ state
    @property
    def framing(self) -> Framing:
        models = self.live.models if self.live is not None else ModelSet.builtin()
        return Framing.of(models.featurizer, models.sample_rate)

    def root(self) -> Path | None:
        return self.folder.path()

    def list_dir(self) -> Path | None:
        r = self.root()
        return r if r is not None and lists_in(r) else None

    def set_busy(self, busy: bool) -> None:
        for w in (self.record_button, self.import_button, self.label_edit, self.speaker_edit, self.folder,
                  self.limit_spin, self.delete_button, self.relabel_button):
            w.setEnabled(not busy)
        if not busy:
            self.meter.reset()

    def reload(self) -> None:
        """Counts from the folder; the cards of the current label's clips already there."""
        root = self.root()
        counts = label_counts(root) if root else {}
        self.counts_label.setText("Clips per label: " + (" · ".join(f"{k} {v}" for k, v in counts.items())
                                                           if counts else "none yet"))
        label = self.label_edit.text().strip()
        cards = []
        if root and label and (root / label).is_dir():
            files = sorted((root / label).glob("*.wav"), key=lambda p: p.stat().st_mtime, reverse=True)
            cards = [Card(str(p), label, ("earlier",)) for p in files]
        self.model.set_cards(cards)

    def _check(self) -> tuple[Path, str, str] | None:
        root = self.root()
        try:
            label = safe_label(self.label_edit.text())
        except KwsError as e:
            self.show_error(f"Label: {e}")
            return None
        if root is None:
            self.show_error("Choose the folder the clips go to")
            return None
        speaker = speaker_name(self.speaker_edit.text())
        for key, v in (("collect/label", label), ("collect/speaker", speaker),
                       ("collect/limit_s", self.limit_spin.value())):
            self.remember(key, v)
        self.reload()
        return root, label, speaker

    # ------------------------------------------------------------------ jobs
    def record(self) -> bool:
        checked = self._check()
        if checked is None:
            return False
        root, label, speaker = checked
        seconds = self.limit_spin.value() or None
        self.session_words = 0
        return self.run_job("Record", record_job(self.framing, str(root), label, speaker, seconds),
                            on_partial=self._partial, on_result=self._done, on_log=self.message.emit)

    def choose_import(self) -> None:
        start = str(self.settings.value("dirs/last", "") or "")
        path, _ = QFileDialog.getOpenFileName(self, "Long recording of one word", start, DIALOG_FILTER)
        if path:
            self.import_file(path)

    def import_file(self, path: str | Path) -> bool:
        checked = self._check()
        if checked is None:
            return False
        root, label, speaker = checked
        speaker = speaker_name(Path(path).stem) if not self.speaker_edit.text().strip() else speaker
        self.session_words = 0
        return self.run_job("Import", import_job(str(path), self.framing, str(root), label, speaker),
                            on_partial=self._partial, on_result=self._done)

    def _partial(self, value) -> None:
        if isinstance(value, InputLevel):
            self.meter.set_level(value.peak_db, value.peak_db > -0.1)
        elif isinstance(value, WordSaved):
            self.session_words += 1
            self.model.add([word_card(value)], front=True)
            self.session_label.setText(f"{self.session_words} words this time")
            self._refresh_counts()

    def _done(self, count: int) -> None:
        self.session_label.setText(f"{count} words this time")
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        root = self.root()
        counts = label_counts(root) if root else {}
        self.counts_label.setText("Clips per label: " + " · ".join(f"{k} {v}" for k, v in counts.items()))

    # ------------------------------------------------------------------ card actions
    def _cards_changed(self) -> None:
        self._refresh_counts()
