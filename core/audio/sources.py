"""Audio sources share one interface: `blocks(hop)` yields float32 hop-sized blocks at the
source's `sample_rate` (the model's rate). Audio file (any format in core.audio.formats), folder of
audio files, numpy array, microphone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.audio.formats import FORMAT_NAMES, is_audio_name
from core.audio.resample import resample
from core.audio.wav import AudioReader
from core.errors import AudioError


class ArraySource:
    """Samples already in memory (float in [-1, 1))."""

    def __init__(self, samples: np.ndarray, sample_rate: int, source_rate: int | None = None, name: str = "array"):
        x = np.asarray(samples, dtype=np.float32)
        if source_rate is not None and source_rate != sample_rate:
            x = resample(x, source_rate, sample_rate)
        self.samples, self.sample_rate, self.name = x, int(sample_rate), name

    def blocks(self, hop: int) -> Iterator[np.ndarray]:
        """Whole hops only; a trailing partial hop is dropped (as ELL does)."""
        n = len(self.samples) // hop
        for i in range(n):
            yield self.samples[i * hop : (i + 1) * hop]

    def close(self) -> None:
        pass

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


class WavSource:
    """An audio file (WAV, FLAC, OGG/Vorbis, Opus, MP3, ...) decoded and resampled block by block, so
    memory stays one block whatever the file's length. The header is checked here: a bad file fails
    at construction; a sample problem found later (NaN) fails in `blocks`."""

    def __init__(self, path: str | os.PathLike, sample_rate: int):
        self.path, self.name, self.sample_rate = Path(path), str(path), int(sample_rate)
        self._reader = AudioReader(path)
        self.duration_s = self._reader.info.duration_s

    def blocks(self, hop: int) -> Iterator[np.ndarray]:
        """Whole hops only; a trailing partial hop is dropped (as ELL does). Closes the file at the end."""
        if hop < 1:
            raise ValueError(f"hop must be >= 1, not {hop}")
        pending = np.zeros(0, np.float32)
        try:
            for chunk in self._reader.blocks(self.sample_rate):
                pending = np.concatenate([pending, chunk]) if len(pending) else chunk
                k = len(pending) // hop
                for i in range(k):
                    yield pending[i * hop : (i + 1) * hop]
                pending = pending[k * hop :]
        finally:
            self.close()

    def close(self) -> None:
        self._reader.close()


def list_wavs(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The audio files of a folder (every extension in AUDIO_EXTENSIONS), sorted."""
    d = Path(folder)
    if not d.is_dir():
        raise AudioError(f"{d}: not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in d.glob(pattern) if is_audio_name(p) and p.is_file())


class FolderSource:
    """The audio files of a folder, sorted, with a cursor (previous / next) for the live view."""

    def __init__(self, folder: str | os.PathLike, sample_rate: int):
        self.files = list_wavs(folder)
        if not self.files:
            raise AudioError(f"{folder}: no audio files ({FORMAT_NAMES}) in this folder")
        self.sample_rate, self.index = int(sample_rate), 0

    @property
    def current(self) -> Path:
        return self.files[self.index]

    def next(self) -> Path:
        self.index = (self.index + 1) % len(self.files)
        return self.current

    def previous(self) -> Path:
        self.index = (self.index - 1) % len(self.files)
        return self.current

    def sources(self) -> Iterator[WavSource]:
        for p in self.files:
            yield WavSource(p, self.sample_rate)

    def blocks(self, hop: int) -> Iterator[np.ndarray]:
        for src in self.sources():
            yield from src.blocks(hop)

    def close(self) -> None:
        pass
