"""The live view's source bar: a wav file, a folder of wavs (previous / next), or a microphone
(device list, optional time limit). It only chooses; the live view opens the source."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from PyQt5.QtCore import QSettings, Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from core.audio.formats import DIALOG_FILTER
from core.audio.sources import list_wavs
from core.errors import KwsError
from core.models import DEMO_WAV
from kwsgui.widgets import NOTE_STYLE, ElidedLabel

WAV_FILTER = DIALOG_FILTER  # WAV, FLAC, OGG/Vorbis, Opus, MP3


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


class SourceBar(QWidget):
    changed = pyqtSignal()
    file_chosen = pyqtSignal(str)  # previous/next picked this file (the view plays it)

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.has_microphone = has_module("core.audio.microphone")
        self.files: list[Path] = []
        self.index = 0
        self._devices_listed = False
        self.mic_found: bool | None = None  # None: not looked yet (only in microphone mode)
        self._folder = ""

        self.combo = QComboBox()
        self.combo.addItem("Wav file", "wav")
        self.combo.addItem("Folder", "folder")
        if self.has_microphone:
            self.combo.addItem("Microphone", "mic")
        self.path_edit = QLineEdit(str(settings.value("paths/wav", str(DEMO_WAV))))
        self.path_edit.setPlaceholderText("audio file to play (WAV, FLAC, OGG, Opus, MP3)")
        self.path_edit.editingFinished.connect(self._path_edited)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self.browse)
        self.prev_button = QPushButton("◀")
        self.prev_button.setToolTip("Previous file of the folder")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button = QPushButton("▶|")
        self.next_button.setToolTip("Next file of the folder")
        self.next_button.clicked.connect(lambda: self.step(1))
        for b in (self.prev_button, self.next_button):
            b.setFixedWidth(34)
        self.file_label = ElidedLabel()  # a fixed width: a long file name never moves the buttons
        self.file_label.setFixedWidth(260)
        self.file_label.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.file_label.setStyleSheet(NOTE_STYLE)
        self.device_combo = QComboBox()
        self.device_combo.setMinimumWidth(200)
        self.device_combo.setToolTip("Microphone (PortAudio input device)")
        self.refresh_button = QPushButton("⟳")
        self.refresh_button.setFixedWidth(30)
        self.refresh_button.setToolTip("List the microphones again")
        self.refresh_button.clicked.connect(self.refresh_devices)
        self.limit_spin = QDoubleSpinBox()
        self.limit_spin.setRange(0.0, 3600.0)
        self.limit_spin.setDecimals(1)
        self.limit_spin.setSuffix(" s")
        self.limit_spin.setSpecialValueText("no limit")
        self.limit_spin.setToolTip("Stop the microphone after this long (0: until Stop)")
        self.limit_spin.setValue(float(settings.value("live/mic_limit_s", 0.0)))
        self.limit_spin.valueChanged.connect(lambda v: settings.setValue("live/mic_limit_s", v))
        self.mic_note = ElidedLabel(elide=Qt.ElideRight)  # one line: the bar keeps its height
        self.mic_note.setStyleSheet("color: #e0a030;")

        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.combo, self.path_edit, self.browse_button, self.prev_button, self.next_button,
                  self.file_label, self.device_combo, self.refresh_button, self.limit_spin, self.mic_note):
            lay.addWidget(w, 1 if w in (self.path_edit, self.mic_note) else 0)
        kind = str(settings.value("live/source", "wav"))
        i = self.combo.findData(kind)
        self.combo.setCurrentIndex(max(0, i) if kind != "mic" else 0)  # never open a device at start
        self.combo.currentIndexChanged.connect(self._kind_changed)
        self._kind_changed()

    # ------------------------------------------------------------------ state
    def kind(self) -> str:
        return str(self.combo.currentData())

    def set_kind(self, kind: str) -> None:
        self.combo.setCurrentIndex(self.combo.findData(kind))

    def device(self) -> int | None:
        d = self.device_combo.currentData()
        return None if d is None else int(d)

    def limit_s(self) -> float | None:
        v = self.limit_spin.value()
        return v if v > 0 else None

    def current_file(self) -> Path | None:
        """The wav to play: the path (wav mode) or the folder's current file (folder mode)."""
        if self.kind() == "folder":
            return self.files[self.index] if self.files else None
        t = self.path_edit.text().strip()
        return Path(t) if t else None

    def set_enabled_for(self, running: bool) -> None:
        k = self.kind()
        self.combo.setEnabled(not running)
        self.path_edit.setEnabled(k != "mic" and not running)
        self.browse_button.setEnabled(k != "mic" and not running)
        for b in (self.prev_button, self.next_button):
            b.setEnabled(k == "folder" and not running and len(self.files) > 1)
        self.device_combo.setEnabled(not running)

    def _kind_changed(self) -> None:
        k = self.kind()
        self.settings.setValue("live/source", k)
        folder = k == "folder"
        for w in (self.prev_button, self.next_button, self.file_label):
            w.setVisible(folder)
        for w in (self.path_edit, self.browse_button):
            w.setVisible(k != "mic")
        for w in (self.device_combo, self.refresh_button, self.limit_spin):
            w.setVisible(k == "mic")
        self.mic_note.setVisible(k == "mic" and bool(self.mic_note.text()))
        if folder:
            self.path_edit.setPlaceholderText("folder of audio files")
            self.path_edit.setText(str(self.settings.value("paths/folder", "")))
            self.load_folder(self.path_edit.text())
        elif k == "wav":
            self.path_edit.setPlaceholderText("audio file to play (WAV, FLAC, OGG, Opus, MP3)")
            self.path_edit.setText(str(self.settings.value("paths/wav", str(DEMO_WAV))))
        elif k == "mic" and not self._devices_listed:
            self.refresh_devices()
        self.changed.emit()

    def _path_edited(self) -> None:
        if self.kind() == "folder":
            if self.path_edit.text().strip() != self._folder:  # editingFinished also fires on focus loss
                self.load_folder(self.path_edit.text())
        elif self.kind() == "wav":
            self.settings.setValue("paths/wav", self.path_edit.text().strip())
        self.changed.emit()

    # ------------------------------------------------------------------ wav / folder
    def browse(self) -> None:
        start = str(self.settings.value("dirs/wav", ""))
        if self.kind() == "folder":
            path = QFileDialog.getExistingDirectory(self, "Open a folder of audio files", start)
            if path:
                self.set_folder(path)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Open audio file", start, WAV_FILTER)
            if path:
                self.set_wav(path)

    def set_wav(self, path: str | Path) -> None:
        path = Path(path).resolve()
        self.set_kind("wav")
        self.path_edit.setText(str(path))
        self.settings.setValue("paths/wav", str(path))
        self.settings.setValue("dirs/wav", str(path.parent))
        self.changed.emit()

    def set_folder(self, path: str | Path) -> bool:
        self.set_kind("folder")
        self.path_edit.setText(str(Path(path).resolve()))
        ok = self.load_folder(self.path_edit.text())
        self.changed.emit()
        return ok

    def load_folder(self, text: str) -> bool:
        text = text.strip()
        self._folder = text
        self.files, self.index = [], 0
        if not text:
            self.file_label.setText("")
            return False
        self.settings.setValue("paths/folder", text)
        try:
            self.files = list_wavs(text)
        except KwsError as e:
            self.file_label.setText(str(e))
            return False
        self.settings.setValue("dirs/wav", text)
        self._show_file()
        return bool(self.files)

    def _show_file(self) -> None:
        if not self.files:
            self.file_label.setText("no audio files")
        else:
            self.file_label.setText(f"{self.index + 1}/{len(self.files)}  {self.files[self.index].name}")
        self.set_enabled_for(False)

    def step(self, delta: int) -> Path | None:
        if not self.files:
            return None
        self.index = (self.index + delta) % len(self.files)
        self._show_file()
        path = self.files[self.index]
        self.file_chosen.emit(str(path))
        return path

    # ------------------------------------------------------------------ microphone
    def refresh_devices(self) -> None:
        """List PortAudio's input devices; without any, say so here (the rest keeps working)."""
        self._devices_listed = True
        self.device_combo.clear()
        self.device_combo.addItem("default microphone", None)
        try:
            from core.audio.microphone import list_input_devices

            devices = list_input_devices()
        except (KwsError, ImportError, OSError) as e:
            self.mic_note.setText(f"No microphone: {e}")
            devices = []
        else:
            self.mic_note.setText("" if devices else "No microphone found: use a wav file or a folder")
        self.mic_found = bool(devices)
        for d in devices:
            self.device_combo.addItem(f"{d.index}: {d.name}", d.index)
        self.mic_note.setVisible(self.kind() == "mic" and bool(self.mic_note.text()))
        self.changed.emit()  # Play and Record follow what was found
