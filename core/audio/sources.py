"""Audio sources share one interface: `blocks(hop)` yields float32 hop-sized blocks at the
source's `sample_rate` (the model's rate). Wav file, folder of wavs, numpy array, microphone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.audio.resample import resample
from core.audio.wav import read_wav
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


class WavSource(ArraySource):
    def __init__(self, path: str | os.PathLike, sample_rate: int):
        x, _ = read_wav(path, sample_rate)
        super().__init__(x, sample_rate, name=str(path))
        self.path = Path(path)


def list_wavs(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise AudioError(f"{d}: not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in d.glob(pattern) if p.suffix.lower() == ".wav" and p.is_file())


class FolderSource:
    """The wav files of a folder, sorted, with a cursor (previous / next) for the live view."""

    def __init__(self, folder: str | os.PathLike, sample_rate: int):
        self.files = list_wavs(folder)
        if not self.files:
            raise AudioError(f"{folder}: no .wav files in this folder")
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
