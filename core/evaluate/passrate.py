"""Pass rate over labelled clips (ELL's eval_test): per clip, the label of the best frame."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.audio.wav import read_wav
from core.pipeline import KeywordSpotter


@dataclass(frozen=True)
class ClipResult:
    path: str
    expected: str
    predicted: str | None
    probability: float

    @property
    def passed(self) -> bool:
        return self.predicted == self.expected


@dataclass
class PassRate:
    results: list[ClipResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def rate(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0


def best_frame(probs: np.ndarray, categories: list[str], threshold: float = 0.0) -> tuple[str | None, float]:
    """The label of the frame with the highest probability (strictly above `threshold`)."""
    if len(probs) == 0:
        return None, 0.0
    t, i = np.unravel_index(int(np.argmax(probs)), probs.shape)
    p = float(probs[t, i])
    return (categories[i], p) if p > threshold else (None, p)


def labelled_clips(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """Speech Commands layout: every wav in every non-underscore sub-folder, labelled by folder."""
    root = Path(folder)
    return [(p, d.name) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith("_")
            for p in sorted(d.glob("*.wav"))]


def evaluate_clips(spotter: KeywordSpotter, categories: list[str], clips: Iterable[tuple[Path, str]],
                   reset: bool = True, progress: Callable[[int, PassRate], None] | None = None) -> PassRate:
    out = PassRate()
    for k, (path, label) in enumerate(clips):
        if reset:
            spotter.reset()
        x, _ = read_wav(path, spotter.sample_rate)
        _, probs = spotter.process(x)
        pred, p = best_frame(probs, categories)
        out.results.append(ClipResult(str(path), label, pred, p))
        if progress:
            progress(k + 1, out)
    return out
