"""New keyword panel: a detector for your own word from a handful of recordings (`kws custom` in the app).

Type the word; its clips come from the Collect panel (Record in Collect… switches there with the
word as the label, and the clips folder follows Collect's FOLDER/WORD), from a folder of your own,
or from clip files you pick (copied into MODELS/WORD/clips). Train runs core.train.custom's
build_custom (synthetic voices, negatives, noise, heavy augmentation, one training run, calibration)
in a child process on the panel's job (kwsgui.keyword_task): each stage shows on the progress bar and
in the log, Stop ends it and leaves OUTDIR as it was (the three model files are written as one set,
at the end). OUTDIR is MODELS/WORD, MODELS being the models folder (default: the app's data folder).
The result: how many held-out keywords were found, the false accepts per hour and the threshold and
smoothing stored in the classifier; Try it live loads featurizer.kwm, classifier.kwm and
categories.txt into the live view, which then uses the stored threshold."""

from __future__ import annotations

import shutil
from dataclasses import fields
from pathlib import Path

from PyQt5.QtCore import QStandardPaths, pyqtSignal
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.audio.formats import DIALOG_FILTER
from core.audio.sources import list_wavs
from core.data.segment import safe_label
from core.errors import KwsError
from core.train.custom import CustomConfig, CustomResult
from kwsgui.keyword_task import MODEL_FILES, custom_job
from kwsgui.panel import Panel
from kwsgui.subproc import run_in_child
from kwsgui.widgets import NOTE_STYLE, NumberBox, PathField, boxed, split_panel, vertical_scroll

# the recipe's options, two a row; tooltips say what each does
OPTIONS = {
    "synth_per_word": "synthetic takes of the keyword (voices x rates x pitches)",
    "negative_takes": "synthetic takes of each other word and sound-alike (class unknown)",
    "user_copies": "augmented copies of each of your clips",
    "reversed_copies": "augmented copies of each of your clips played backwards (class unknown: your voice and room "
                       "without the word)",
    "partial_copies": "words of 2+ syllables: augmented copies of each of your clips cut off part-way through the "
                      "word (class unknown: 'ha-' is not 'happy')",
    "partial_synth": "words of 2+ syllables: share of the synthetic takes also cut off part-way (unknown)",
    "partial_others": "share of the other words' takes cut off part-way too (unknown; 0: none)",
    "synth_copies": "augmented copies of each synthetic clip",
    "background_rows": "rows of pure noise (class background)",
    "held_out_percent": "synthetic voices kept out of training, for validation and calibration",
    "real_held_out_percent": "speakers of the real recordings of other words kept out of training, for calibration",
    "init": "start from this model's recurrent layers (trained on many real speakers), with a new output layer: "
            "'default' = assets/custom_init.kwm (the DevKit fine-tuned on real speakers); empty = from scratch",
    "hidden_size": "GRU units per layer (from scratch)",
    "num_layers": "GRU layers (from scratch)",
    "epochs": "training epochs",
    "members": "detectors trained from as many seeds, their probabilities averaged (steadier than one)",
    "quiet_unknown": "weight of 'no word' at other words' likeliest frame (0: off; fewer false accepts, lower scores)",
    "target_fa_per_hour": "false accepts per hour the DET stream's point may allow (reported)",
    "target_fa_clips": "share of held-out other words' clips the stored threshold may fire on",
    "calibration_minutes": "length of the held-out stream the threshold is chosen on",
    "jobs": "processes for speech synthesis and features",
    "seed": "random seed",
    "engines": "speech engines, comma-separated (empty: every one installed)",
    "teacher": "a model whose soft targets guide training (optional)",
}
INT_RANGES = {"synth_per_word": (1, 100_000), "negative_takes": (1, 10_000), "user_copies": (0, 10_000),
              "reversed_copies": (0, 10_000), "partial_copies": (0, 10_000),
              "synth_copies": (0, 1000), "background_rows": (0, 1_000_000), "hidden_size": (1, 4096),
              "num_layers": (1, 3), "epochs": (1, 10_000), "members": (1, 8), "jobs": (1, 64), "seed": (0, 2**31 - 1)}
FLOAT_RANGES = {"held_out_percent": (1.0, 99.0), "real_held_out_percent": (1.0, 99.0), "partial_synth": (0.0, 1.0),
                "partial_others": (0.0, 1.0),
                "target_fa_clips": (0.0, 0.99), "target_fa_per_hour": (0.0, 10_000.0),
                "calibration_minutes": (0.1, 1440.0), "quiet_unknown": (0.0, 100.0)}


def default_models_root() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)) / "models"


def parse_words(text: str) -> list[str]:
    """'hello, world' -> ['hello', 'world']; a KwsError names a word that cannot be a folder name."""
    words = [safe_label(w.lower()) for w in text.split(",") if w.strip()]
    if not words:
        raise KwsError("type the word the detector should spot")
    return words


class KeywordPanel(Panel):
    title = "New keyword"
    use_in_live = pyqtSignal()  # the new model was loaded into the live view
    record_requested = pyqtSignal(str)  # the word: record it in the Collect panel

    def __init__(self, parent: QWidget | None = None, *, settings, live=None):
        super().__init__(parent, settings=settings)
        self.live = live
        self.result: CustomResult | None = None
        self.options: dict[str, QWidget] = {}
        s = settings
        self._auto_clips = str(s.value("keyword/auto_clips", "true")) == "true"  # clips follow Collect's folder
        self._setting_clips = False
        self.word_edit = QLineEdit(str(s.value("keyword/word", "")))
        self.word_edit.setPlaceholderText("the word to spot, e.g. hello (several: hello, goodbye)")
        self.word_edit.textChanged.connect(lambda _t: self._word_changed())
        self.clips = PathField(s, "keyword/clips", mode="dir", caption="Your recordings of the word",
                               placeholder="a folder of your clips (FOLDER/*.wav, or FOLDER/WORD/*.wav)")
        self.clips.changed.connect(lambda _t: self._clips_edited())
        self.add_button = QPushButton("Add clip files…")
        self.add_button.setToolTip("Copy clips you already have into MODELS/WORD/clips")
        self.add_button.clicked.connect(self.choose_files)
        self.record_button = QPushButton("●  Record in Collect…")
        self.record_button.setToolTip("Switch to the Collect panel with this word as the label; come back to train")
        self.record_button.clicked.connect(self._record)
        self.clips_label = QLabel()
        self.clips_label.setStyleSheet(NOTE_STYLE)
        self.noise = PathField(s, "keyword/noise", mode="dir", caption="Background noise recordings",
                               default=str(s.value("dataset/noise_dir", "") or ""),
                               placeholder="noise recordings, e.g. Speech Commands' _background_noise_")
        self.negatives = PathField(s, "keyword/negatives", mode="dir", caption="Real recordings of other words",
                                   placeholder="optional: FOLDER/word/*.wav of other words (they help a lot)")
        self.models_root = PathField(s, "keyword/models_root", mode="dir", caption="Models folder",
                                     default=str(default_models_root()))
        self.models_root.changed.connect(lambda _t: self._word_changed())
        self.outdir_label = QLabel()
        self.outdir_label.setStyleSheet(NOTE_STYLE)
        form = QFormLayout()
        form.addRow("Word", self.word_edit)
        row = QHBoxLayout()
        row.addWidget(self.clips, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.record_button)
        form.addRow("Your clips", row)
        form.addRow("", self.clips_label)
        form.addRow("Noise", self.noise)
        form.addRow("Other words", self.negatives)
        form.addRow("Models folder", self.models_root)
        form.addRow("", self.outdir_label)

        recipe = QWidget()
        grid = QGridLayout(recipe)
        saved = self._saved_config()
        r, c = 0, 0
        for name, tip in OPTIONS.items():
            w = self._field(name, getattr(saved, name))
            w.setToolTip(tip)
            self.options[name] = w
            label = QLabel(name.replace("_", " "))
            label.setToolTip(tip)
            if name in ("engines", "teacher", "init"):  # text: a row of its own
                r, c = r + (c > 0), 0
                grid.addWidget(label, r, 0)
                grid.addWidget(w, r, 1, 1, 3)
                r += 1
                continue
            grid.addWidget(label, r, 2 * c)
            grid.addWidget(w, r, 2 * c + 1)
            r, c = (r + 1, 0) if c else (r, 1)
        grid.setRowStretch(r + 1, 1)  # the options at the top, the spare height below them
        self.train_button = QPushButton("▶  Train")
        self.train_button.clicked.connect(lambda: self.train())
        self.try_button = QPushButton("Try it live")
        self.try_button.setToolTip("Load OUTDIR's featurizer, classifier (with its stored threshold) and categories "
                                   "into the live view")
        self.try_button.clicked.connect(lambda: self.try_live())
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.try_button)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        box = QGroupBox("Recipe (kws custom)")
        QVBoxLayout(box).addWidget(vertical_scroll(recipe))
        ll.addWidget(box, 1)
        ll.addLayout(buttons)

        self.result_label = QLabel("no model yet")
        self.result_label.setStyleSheet("font-size: 13pt; font-weight: bold;")
        self.result_label.setWordWrap(True)
        self.detail_label = QLabel()
        self.detail_label.setStyleSheet(NOTE_STYLE)
        self.detail_label.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFont(QFont("monospace", 9))
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.result_label)
        rl.addWidget(self.detail_label)
        rl.addWidget(self.log, 1)
        split_panel(self, left, right, (420, 700), header=(boxed("Your keyword", form),))
        self._word_changed()

    # ------------------------------------------------------------------ form
    def _saved_config(self) -> CustomConfig:
        d = {}
        for f in fields(CustomConfig):
            v = self.settings.value(f"keyword/{f.name}")
            if v is None:
                continue
            default = getattr(CustomConfig(), f.name)
            try:
                d[f.name] = (tuple(x for x in str(v).split(",") if x) or None if f.name == "engines"
                             else type(default)(v))
            except (TypeError, ValueError):
                pass
        try:
            return CustomConfig(**d)
        except ValueError:
            return CustomConfig()

    def _field(self, name: str, value) -> QWidget:
        if name == "teacher":
            w = PathField(self.settings, "keyword/teacher", mode="open", caption="Teacher model (.ell, .onnx, .kwm)",
                          placeholder="none")
            w.set_path(str(value))
            w.edit.setMinimumWidth(40)
        elif name == "init":
            w = PathField(self.settings, "keyword/init", mode="open", caption="Start from model (.kwm, .ell, .onnx)",
                          placeholder="empty: from scratch; default: assets/custom_init.kwm's layers")
            w.set_path(str(value))
            w.edit.setMinimumWidth(40)
        elif name == "engines":
            w = QLineEdit(",".join(value or ()))
            w.setPlaceholderText("every engine installed (espeak, flite, festival, piper)")
        elif name in INT_RANGES:
            w = QSpinBox()
            w.setRange(*INT_RANGES[name])
            w.setValue(int(value))
        else:
            w = NumberBox(4)
            w.setRange(*FLOAT_RANGES[name])
            w.setValue(float(value))
        return w

    def config(self) -> CustomConfig:
        """The recipe form as a CustomConfig; ValueError names a bad value."""
        d = {}
        for name, w in self.options.items():
            if isinstance(w, PathField):
                d[name] = w.text()
            elif isinstance(w, QLineEdit):
                d[name] = tuple(e.strip() for e in w.text().split(",") if e.strip()) or None
            else:
                d[name] = w.value()
        return CustomConfig(**d)

    def set_option(self, name: str, value) -> None:
        w = self.options[name]
        if isinstance(w, PathField):
            w.set_path(str(value))
        elif isinstance(w, QLineEdit):
            w.setText(",".join(value) if isinstance(value, (tuple, list)) else str(value or ""))
        else:
            w.setValue(value)

    # ------------------------------------------------------------------ word, clips, output
    def words(self) -> list[str]:
        return parse_words(self.word_edit.text())

    def outdir(self) -> Path | None:
        root = self.models_root.path()
        try:
            words = self.words()
        except KwsError:
            return None
        return root / "+".join(words) if root is not None else None

    def _collect_folder(self) -> Path | None:
        """Collect's FOLDER/WORD for the (first) word, when Collect has a folder."""
        root = str(self.settings.value("collect/folder", "") or "")
        try:
            word = self.words()[0]
        except KwsError:
            return None
        return Path(root) / word if root else None

    def _word_changed(self) -> None:
        self.remember("keyword/word", self.word_edit.text().strip())
        out = self.outdir()
        self.outdir_label.setText(f"the model goes to {out}" if out else "type the word (and choose a models folder)")
        if self._auto_clips:  # follow Collect's folder of this word
            folder = self._collect_folder()
            if folder is not None and folder.is_dir():
                self._set_clips(folder, auto=True)
        self._refresh()

    def _set_clips(self, folder: Path, *, auto: bool) -> None:
        self._setting_clips = True
        try:
            self.clips.set_path(folder)
        finally:
            self._setting_clips = False
        self._auto_clips = auto
        self.remember("keyword/auto_clips", "true" if auto else "false")

    def _clips_edited(self) -> None:
        if not self._setting_clips:
            self._auto_clips = not self.clips.text()  # the user's own folder stays until cleared
            self.remember("keyword/auto_clips", "true" if self._auto_clips else "false")
        self._refresh()

    def clip_count(self) -> dict[str, int]:
        """Clips of each word in the clips folder (FOLDER/WORD/*.wav, or FOLDER/*.wav for one word)."""
        d = self.clips.path()
        try:
            words = self.words()
        except KwsError:
            return {}
        if d is None or not d.is_dir():
            return {}
        out = {}
        for w in words:
            files = list_wavs(d / w) if (d / w).is_dir() else list_wavs(d) if len(words) == 1 else []
            out[w] = len(files)
        return out

    def _refresh(self) -> None:
        counts = self.clip_count()
        if not counts:
            self.clips_label.setText("no clips yet: record them in Collect, pick files, or choose a folder")
        else:
            few = [w for w, n in counts.items() if n < 3]
            self.clips_label.setText(" · ".join(f"{w}: {n} clips" for w, n in counts.items())
                                     + (" (about 10 of each work well; at least 3)" if few or
                                        min(counts.values()) < 8 else ""))
        out = self.outdir()
        self.try_button.setEnabled(not self.busy and out is not None and
                                   all((out / n).is_file() for n in MODEL_FILES))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._word_changed()  # back from Collect: new clips

    def _record(self) -> None:
        try:
            word = self.words()[0]
        except KwsError as e:
            self.show_error(str(e))
            return
        self.clear_error()
        self._auto_clips = True
        self.remember("keyword/auto_clips", "true")
        self.record_requested.emit(word)

    def choose_files(self) -> None:
        start = str(self.settings.value("dirs/last", "") or "")
        paths, _ = QFileDialog.getOpenFileNames(self, "Your clips of the word", start, DIALOG_FILTER)
        if paths:
            self.settings.setValue("dirs/last", str(Path(paths[0]).parent))
            self.add_files(paths)

    def add_files(self, paths) -> Path | None:
        """Copy clip files into MODELS/WORD/clips (kept beside the model) and use that folder."""
        try:
            words = self.words()
        except KwsError as e:
            self.show_error(str(e))
            return None
        if len(words) > 1:
            self.show_error("several words: choose a folder with one sub-folder of clips per word")
            return None
        out = self.outdir()
        if out is None:
            self.show_error("choose a models folder")
            return None
        dest = out / "clips"
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for p in map(Path, paths):
                target = dest / p.name
                if target.resolve() != p.resolve():
                    shutil.copyfile(p, target)
        except OSError as e:
            self.show_error(f"cannot copy the clips into {dest}: {e.strerror or e}")
            return None
        self.clear_error()
        self._set_clips(dest, auto=False)
        self._refresh()
        return dest

    # ------------------------------------------------------------------ train, try
    def set_busy(self, busy: bool) -> None:
        for w in (self.train_button, self.word_edit, self.clips, self.add_button, self.record_button, self.noise,
                  self.negatives, self.models_root, *self.options.values()):
            w.setEnabled(not busy)
        self._refresh()

    def train(self) -> bool:
        try:
            words, cfg = self.words(), self.config()
        except (KwsError, ValueError) as e:
            self.show_error(str(e))
            return False
        out, clips, noise = self.outdir(), self.clips.text(), self.noise.text()
        if not clips:
            self.show_error("choose your clips of the word (record them in Collect, or pick files)")
            return False
        if not noise:
            self.show_error("choose a folder of background noise recordings")
            return False
        if out is None:
            self.show_error("choose a models folder")
            return False
        for f in fields(CustomConfig):
            v = getattr(cfg, f.name)
            self.remember(f"keyword/{f.name}", ",".join(v) if isinstance(v, tuple) else "" if v is None else v)
        self.result = None
        self.result_label.setText("training…")
        self.detail_label.clear()
        self.log.appendPlainText(f"— {', '.join(words)}: clips {clips} → {out} —")
        args = (tuple(words), clips, str(out), noise, self.negatives.text() or None, cfg)
        return self.run_job("New keyword", lambda ctx: run_in_child(custom_job, args, ctx),
                            on_log=self.log.appendPlainText, on_result=self._done, on_finished=self._finished)

    def _done(self, r: CustomResult) -> None:
        self.result = r
        head, detail = r.summary()  # as `kws custom` prints it
        self.result_label.setText(head)
        self.detail_label.setText(detail)
        for path in r.outputs.values():
            self.log.appendPlainText(f"wrote {path}")

    def _finished(self, summary) -> None:
        if summary.cancelled:
            self.result_label.setText("stopped: the models folder is as it was")
        elif summary.error:
            self.result_label.setText("failed (see the red line above)")
        self._refresh()

    def try_live(self) -> bool:
        """Load OUTDIR's featurizer, classifier and categories into the live view."""
        out, live = self.outdir(), self.live
        if out is None or live is None:
            return False
        missing = [n for n in MODEL_FILES if not (out / n).is_file()]
        if missing:
            self.show_error(f"{out}: no {', '.join(missing)}: train first")
            return False
        live.set_models(live.models.without_classifier())
        ok = (live.load_featurizer(out / MODEL_FILES[0]) and live.load_classifier(out / MODEL_FILES[1])
              and live.load_categories(out / MODEL_FILES[2]))
        if not ok:
            self.show_error(f"the live view refused the model: {live.error_label.text()}")
            return False
        self.message.emit(f"Live view: {out.name} (threshold {live.threshold_spin.value():g} from the model)")
        self.use_in_live.emit()
        return True
