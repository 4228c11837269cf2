"""Feature streams for VAD evaluation and tuning, and the scores on them.

A `FeatureStream` is a long run of feature frames with labelled words in it: either the clips
of a list back to back (ELL's continuous eval_test) or a stream assembled from the clips with
silence gaps and background noise at an SNR (core.evaluate.stream). Each word has a decision
window (the clip's frames) and, for assembled streams, the frames of the spoken word itself
(energy of the clean clip). Scores:
- accuracy: per word, the label of the single most confident frame in its window (eval_test's
  "best frame"), with the decision margin as a smooth tie-breaker;
- segmentation F1: VAD segments matched one to one with spoken words by overlap (a word cut in
  two or two words merged both cost).
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio.wav import read_wav
from core.data.dataset import BACKGROUND_LABELS
from core.errors import AudioError, DataError
from core.evaluate.passrate import attributed, decisive_frames
from core.evaluate.stream import Event, assemble_stream
from core.features.featurizer import hops
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph
from core.progress import check_cancel
from core.vad.analysis import segments as signal_segments

WORD_DROP_DB = 25.0  # a frame is part of the word when within this much of the clip's loudest frame


@dataclass(frozen=True)
class FeatureStream:
    name: str
    features: np.ndarray  # (T, n_features)
    frame_duration_s: float
    labels: tuple[str, ...]  # one per word
    windows: np.ndarray  # (words, 2) [lo, hi) frames of the decision window (the clip)
    words: np.ndarray | None = None  # (words, 2) [lo, hi) frames of the spoken word
    events: tuple[Event, ...] = ()  # assembled streams: the clips' places in seconds
    duration_s: float = 0.0

    @property
    def n_frames(self) -> int:
        return len(self.features)

    def oracle_resets(self) -> np.ndarray:
        """Reset frames that restart the classifier at every clip start (ELL's --reset)."""
        lo = self.windows[:, 0]
        return np.unique(lo[lo > 0] - 1)


def _featurize(rt: Interpreter, samples: np.ndarray) -> np.ndarray:
    blocks = hops(samples, rt.input_size)
    return rt.run(blocks) if len(blocks) else np.zeros((0, rt.output_size), np.float32)


def sample_rate_of(featurizer: Graph, path: str | os.PathLike | None = None) -> int:
    from core.data.dataset import featurizer_info

    return int(featurizer_info(featurizer, path)["sample_rate"])


def list_stream(featurizer: Graph, clips: list[tuple[Path, str]], sample_rate: int,
                progress: Callable[[int, int], None] | None = None, cancel=None) -> FeatureStream:
    """The clips back to back, featurized as one stream (state carried from clip to clip)."""
    rt = Interpreter(featurizer)
    feats, labels, windows, pos = [], [], [], 0
    for k, (path, label) in enumerate(clips):
        check_cancel(cancel)
        try:
            x, _ = read_wav(path, sample_rate)
        except AudioError:
            continue
        f = _featurize(rt, x)
        feats.append(f)
        labels.append(label)
        windows.append((pos, pos + len(f)))
        pos += len(f)
        if progress:
            progress(k + 1, len(clips))
    if not labels:
        raise DataError("no readable clips")
    fd = rt.input_size / sample_rate
    return FeatureStream("clips back to back", np.concatenate(feats), fd, tuple(labels),
                         np.array(windows, dtype=np.int64), duration_s=pos * fd)


def word_frames(clean: np.ndarray, lo: int, hi: int, hop: int,
                drop_db: float = WORD_DROP_DB) -> tuple[int, int]:
    """[first, last + 1) frames of the clip frames lo..hi-1 within drop_db of the loudest."""
    seg = clean[lo * hop : hi * hop]
    n = len(seg) // hop
    if n == 0:
        return lo, lo
    energy = np.square(seg[: n * hop].reshape(n, hop), dtype=np.float64).mean(axis=1)
    peak = energy.max()
    if peak <= 0:
        return lo, lo
    on = np.nonzero(energy >= peak * 10 ** (-drop_db / 10))[0]
    return lo + int(on[0]), lo + int(on[-1]) + 1


def assembled_stream(featurizer: Graph, clips: list[tuple[Path, str]], sample_rate: int, *,
                     noise_files: list[Path] | None = None, snr_db: float = 20.0,
                     gap_s: tuple[float, float] = (0.5, 1.5), seed: int = 0) -> FeatureStream:
    """Clips with random silence gaps and, with noise files, background noise at `snr_db`."""
    clean = assemble_stream(clips, sample_rate, gap_s=gap_s, noise_files=None, seed=seed)
    if not clean.events:
        raise DataError("no readable clips")
    noisy = clean
    if noise_files:
        noisy = assemble_stream(clips, sample_rate, gap_s=gap_s, noise_files=noise_files, snr_db=snr_db,
                                seed=seed)
    rt = Interpreter(featurizer)
    hop = rt.input_size
    fd = hop / sample_rate
    feats = _featurize(rt, noisy.samples)
    windows, words = [], []
    for e in clean.events:
        lo = int(round(e.start_s * sample_rate)) // hop
        hi = min(len(feats), int(math.ceil(e.end_s * sample_rate / hop)))
        windows.append((lo, hi))
        words.append(word_frames(clean.samples, lo, hi, hop))
    name = f"stream, noise at {snr_db:g} dB SNR" if noise_files else "stream, silent gaps"
    return FeatureStream(name, feats, fd, tuple(e.label for e in clean.events),
                         np.array(windows, dtype=np.int64), np.array(words, dtype=np.int64), clean.events,
                         noisy.duration_s)


# ------------------------------------------------------------------ scores
@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int
    margin: float  # mean over words of the best-frame decision margin, clipped to [-1, 1]
    predicted: tuple[str | None, ...] = ()

    @property
    def rate(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def key(self) -> tuple[int, float]:
        return self.correct, self.margin


def window_accuracy(probs_of: Callable[[int, int], np.ndarray], stream: FeatureStream,
                    categories: list[str]) -> Accuracy:
    """`probs_of(lo, hi)` gives the (hi - lo, classes) outputs of a window. Per word: correct
    when the most confident frame of its window says its label, frames the background class wins
    passed over and a word carried over from before the window left to it (`kws eval`'s rules:
    core.evaluate.passrate.decisive_frames, attributed)."""
    idx = {c: i for i, c in enumerate(categories)}
    quiet = [i for i, c in enumerate(categories) if c in BACKGROUND_LABELS]
    correct, margins, preds = 0, [], []
    for (lo, hi), label in zip(stream.windows.tolist(), stream.labels):
        if hi <= lo:
            margins.append(-1.0)
            preds.append(None)
            continue
        start = max(lo - 1, 0)  # the frame before the window says what is carried into it
        p = probs_of(start, hi)
        if start < lo:
            p = attributed(p[1:], int(p[0].argmax()), quiet)
        p = p[decisive_frames(p[None], quiet)[0]]
        _, best = np.unravel_index(int(np.argmax(p)), p.shape)
        preds.append(categories[best])
        j = idx.get(label)
        if j is None:
            margins.append(-1.0)
            continue
        mine = float(p[:, j].max())
        others = float(np.delete(p, j, axis=1).max()) if p.shape[1] > 1 else 0.0
        correct += int(best == j)
        margins.append(max(-1.0, min(1.0, mine - others)))
    return Accuracy(correct, len(stream.labels), float(np.mean(margins)) if margins else 0.0, tuple(preds))


@dataclass(frozen=True)
class SegmentScore:
    matched: int
    segments: int
    words: int

    @property
    def precision(self) -> float:
        return self.matched / self.segments if self.segments else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.words if self.words else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def segment_score(signal: np.ndarray, stream: FeatureStream) -> SegmentScore:
    """VAD segments vs spoken words, one to one: each segment matches the unmatched word it
    overlaps most (in time order); unmatched segments are false alarms, unmatched words misses."""
    if stream.words is None:
        raise ValueError("this stream has no word boundaries (assemble one from clips)")
    segs = [(int(round(a / stream.frame_duration_s)), int(round(b / stream.frame_duration_s)))
            for a, b in signal_segments(signal, stream.frame_duration_s)]
    words = stream.words.tolist()
    taken = [False] * len(words)
    starts = [w[0] for w in words]
    matched = 0
    for a, b in segs:
        k = max(0, bisect.bisect_right(starts, a) - 1)
        best, best_ov = None, 0
        for i in range(k, len(words)):
            wl, wh = words[i]
            if wl >= b:
                break
            ov = min(b, wh) - max(a, wl)
            if ov > best_ov and not taken[i]:
                best, best_ov = i, ov
        if best is not None:
            taken[best] = True
            matched += 1
    return SegmentScore(matched, len(segs), sum(1 for w in words if w[1] > w[0]))
