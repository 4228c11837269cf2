"""The live pipeline: audio hops -> featurizer -> classifier -> post-processing -> detections.

`KeywordSpotter` runs a featurizer graph and a classifier graph one hop at a time (streaming)
or over whole clips; `Detector` turns probabilities into ELL-style detections (threshold strictly
greater, mean of the last N outputs, ignore list).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from core.errors import KwsError, ModelFormatError
from core.features.featurizer import hops
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph


@dataclass(frozen=True)
class Detection:
    frame: int
    index: int
    label: str
    probability: float

    def line(self) -> str:
        return f"<<< DETECTED ({self.index}) {int(100 * self.probability)}% {self.label} >>>"


class Detector:
    """Threshold (strictly greater), smoothing over the last N frames, ignore labels.

    `update` returns a Detection when a label newly crosses the threshold (one per word, not
    one per frame); `last` is the latest accepted (label, probability) or None.
    """

    def __init__(self, categories: list[str], threshold: float = 0.6, smoothing: int = 0,
                 ignore: tuple[str, ...] | list[str] = ()):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0 frames, got {smoothing}")
        self.categories = list(categories)
        unknown = [lb for lb in ignore if lb not in self.categories]
        if unknown:
            raise ValueError(f"ignore label(s) not in categories: {', '.join(unknown)}")
        self.threshold, self.smoothing = threshold, smoothing
        self.ignore = set(ignore)
        self.reset()

    def reset(self) -> None:
        self._window: deque[np.ndarray] = deque(maxlen=max(self.smoothing, 1))
        self._active: int | None = None
        self.frame = 0

    def smooth(self, probs: np.ndarray) -> np.ndarray:
        self._window.append(np.asarray(probs, dtype=np.float32))
        return self._window[0] if len(self._window) == 1 else np.mean(self._window, axis=0)

    def accept(self, probs: np.ndarray) -> tuple[int, float] | None:
        i = int(np.argmax(probs))
        p = float(probs[i])
        if p > self.threshold and (i >= len(self.categories) or self.categories[i] not in self.ignore):
            return i, p
        return None

    def update(self, probs: np.ndarray) -> Detection | None:
        frame = self.frame
        self.frame += 1
        hit = self.accept(self.smooth(probs))
        if hit is None:
            self._active = None
            return None
        i, p = hit
        if i == self._active:
            return None
        self._active = i
        label = self.categories[i] if i < len(self.categories) else str(i)
        return Detection(frame, i, label, p)


DEFAULT_THRESHOLD, DEFAULT_SMOOTHING = 0.6, 0
DETECTOR_KEY = "detector"  # classifier metadata: {"threshold", "smoothing", "calibration": {...}} (kws calibrate)


@dataclass(frozen=True)
class DetectorSettings:
    threshold: float
    smoothing: int
    source: str  # e.g. "threshold 0.72 from the model, smoothing 4 from the model"


def stored_detector(classifier: Graph | None) -> dict | None:
    """The threshold and smoothing a classifier carries in its metadata (`kws calibrate`), or None."""
    d = classifier.metadata.get(DETECTOR_KEY) if classifier is not None else None
    if d is None:
        return None
    th, sm = d.get("threshold") if isinstance(d, dict) else None, d.get("smoothing") if isinstance(d, dict) else None
    if (isinstance(th, bool) or not isinstance(th, (int, float)) or not 0.0 <= th <= 1.0
            or isinstance(sm, bool) or not isinstance(sm, int) or sm < 0):
        raise ModelFormatError(f"classifier metadata {DETECTOR_KEY!r} must hold a threshold in [0, 1] and a "
                               f"smoothing >= 0 frames, got {d!r}")
    return d


def detector_settings(classifier: Graph | None, threshold: float | None = None,
                      smoothing: int | None = None) -> DetectorSettings:
    """The one rule for every runner (kws run, kws eval, the live view): a value the user set wins,
    then the model's stored one (`kws calibrate`), then the defaults (0.6, no smoothing)."""
    stored = stored_detector(classifier) or {}
    parts, values = [], []
    for name, user, default in (("threshold", threshold, DEFAULT_THRESHOLD), ("smoothing", smoothing,
                                                                               DEFAULT_SMOOTHING)):
        if user is not None:
            v, where = user, "set"
        elif name in stored:
            v, where = stored[name], "from the model"
        else:
            v, where = default, "default"
        values.append(v)
        parts.append(f"{name} {v:g} {where}")
    return DetectorSettings(float(values[0]), int(values[1]), ", ".join(parts))


BACKENDS = ("auto", "compiled", "interpreter")


def _runtimes(featurizer: Graph, classifier: Graph | None, backend: str):
    """(featurizer runtime, classifier runtime or None, backend used, why not compiled or None)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    why = None
    if backend != "interpreter":
        try:
            from core.compiler.runtime import CompiledModel

            f = CompiledModel(featurizer, "kws_featurizer")
            c = CompiledModel(classifier, "kws_classifier") if classifier is not None else None
            return f, c, "compiled", None
        except (KwsError, ImportError, OSError) as e:
            if backend == "compiled":
                raise
            why = str(e)
    clf = Interpreter(classifier) if classifier is not None else None
    return Interpreter(featurizer), clf, "interpreter", why


class KeywordSpotter:
    """Featurizer + classifier, streaming. backend "compiled" runs native code from the
    compiler (core/compiler), "interpreter" the numpy reference; "auto" (default) compiles when
    the compiler supports the models and falls back to the interpreter otherwise
    (`backend` says which runs, `fallback_reason` why not compiled)."""

    def __init__(self, featurizer: Graph, classifier: Graph | None = None, backend: str = "auto"):
        self.featurizer, self.classifier, self.backend, self.fallback_reason = _runtimes(
            featurizer, classifier, backend)
        if self.classifier and self.featurizer.output_size != self.classifier.input_size:
            raise ModelFormatError(
                f"featurizer emits {self.featurizer.output_size} features but the classifier expects "
                f"{self.classifier.input_size}"
            )
        meta = featurizer.metadata
        self.hop_length = self.featurizer.input_size
        self.sample_rate = int(meta.get("sample_rate") or meta.get("featurizer", {}).get("sample_rate") or 16000)
        self.n_features = self.featurizer.output_size
        self.n_classes = self.classifier.output_size if self.classifier else 0
        self.frames = 0
        self.seconds = 0.0

    @property
    def frame_duration_s(self) -> float:
        return self.hop_length / self.sample_rate

    def reset(self) -> None:
        self.featurizer.reset()
        if self.classifier:
            self.classifier.reset()

    def step(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One hop of audio -> (features, probabilities or None)."""
        t0 = time.perf_counter()
        feats = self.featurizer.step(block)
        probs = self.classifier.step(feats) if self.classifier else None
        self.seconds += time.perf_counter() - t0
        self.frames += 1
        return feats, probs

    def process(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A whole clip (continuing the current state): ((T, features), (T, classes) or None)."""
        blocks = hops(samples, self.hop_length)
        t0 = time.perf_counter()
        feats = self.featurizer.run(blocks) if len(blocks) else np.zeros((0, self.n_features), np.float32)
        probs = None
        if self.classifier:
            probs = self.classifier.run(feats) if len(feats) else np.zeros((0, self.n_classes), np.float32)
        self.seconds += time.perf_counter() - t0
        self.frames += len(blocks)
        return feats, probs

    @property
    def average_time_s(self) -> float:
        return self.seconds / self.frames if self.frames else 0.0
