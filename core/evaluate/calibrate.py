"""Choose a detector's threshold and smoothing from measured false accepts (a DET curve).

On a long stream (core.evaluate.stream: held-out clips of the keywords and of other words, silence
gaps, background noise under everything) the classifier runs once; then every (smoothing,
threshold) pair is scored exactly as `Detector` + `detection_metrics` would score it (the same
running mean, strict threshold, one detection per word, a hit once per event within its span plus
the tolerance), but vectorised over frames: for each pair, the false rejection rate (keyword events
missed / keyword events) and the false accepts per hour (detections that hit no keyword event).
The operating point is the lowest false rejection rate with at most `target_fa_per_hour`; ties go to
less smoothing (less delay), then to the middle of the run of thresholds that tie.

Events whose label is not a keyword of the model (other words, "unknown") or is ignored are not
positives: any detection on them is a false accept.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from core.evaluate.stream import Event

# 0.30 .. 0.95 by 0.01, then finer towards 1 (a softmax is often sure of itself)
DEFAULT_THRESHOLDS = tuple(round(0.30 + 0.01 * i, 2) for i in range(66)) + (0.96, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
DEFAULT_SMOOTHINGS = (0, 2, 4, 8)
NON_KEYWORDS = ("background_noise", "_background_noise_", "background", "silence", "_silence_", "unknown",
                "_unknown_")


def default_ignore(categories: Sequence[str]) -> tuple[str, ...]:
    """The model's classes that are not keywords (background, silence, unknown)."""
    return tuple(c for c in categories if c in NON_KEYWORDS)


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    smoothing: int
    hits: int
    misses: int
    false_accepts: int
    duration_s: float

    @property
    def frr(self) -> float:
        n = self.hits + self.misses
        return self.misses / n if n else 0.0

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts * 3600.0 / self.duration_s if self.duration_s else 0.0

    def to_dict(self) -> dict:
        return dict(asdict(self), frr=self.frr, fa_per_hour=self.fa_per_hour)


@dataclass(frozen=True)
class Calibration:
    points: tuple[OperatingPoint, ...]  # every (smoothing, threshold) scored, smoothing-major
    chosen: OperatingPoint
    target_fa_per_hour: float
    met: bool  # some point has at most the target FA/h
    positives: int  # keyword events in the stream
    others: int  # events that are not keywords: other words, unknown (any detection on them is a false accept)
    duration_s: float
    ignore: tuple[str, ...]

    def curve(self, smoothing: int) -> list[OperatingPoint]:
        return [p for p in self.points if p.smoothing == smoothing]

    @property
    def smoothings(self) -> list[int]:
        return sorted({p.smoothing for p in self.points})

    @property
    def fa_resolution_per_hour(self) -> float:
        """One false accept on this stream, in FA/h."""
        return 3600.0 / self.duration_s if self.duration_s else math.inf

    @property
    def no_fa_floor(self) -> float:
        """Where "no false accept" is drawn on a DET plot's log axis: below one false accept."""
        return min(self.fa_resolution_per_hour, self.target_fa_per_hour or math.inf) / 2

    def stored(self) -> dict:
        """What goes into the classifier's metadata."""
        c = self.chosen
        return {"threshold": c.threshold, "smoothing": c.smoothing,
                "calibration": {"target_fa_per_hour": self.target_fa_per_hour, "met": self.met,
                                "frr": round(c.frr, 6), "fa_per_hour": round(c.fa_per_hour, 4),
                                "false_accepts": c.false_accepts, "positives": self.positives,
                                "other_words": self.others, "stream_s": round(self.duration_s, 3),
                                "ignore": list(self.ignore)}}

    def to_dict(self) -> dict:
        return {"target_fa_per_hour": self.target_fa_per_hour, "met": self.met, "positives": self.positives,
                "other_words": self.others, "duration_s": self.duration_s, "ignore": list(self.ignore),
                "fa_resolution_per_hour": self.fa_resolution_per_hour, "chosen": self.chosen.to_dict(),
                "points": [p.to_dict() for p in self.points]}


def smoothed(probs: np.ndarray, n: int) -> np.ndarray:
    """What `Detector.smooth` gives frame by frame: the float32 mean of the last min(t + 1, n) frames."""
    p = np.asarray(probs, dtype=np.float32)
    if n <= 1 or len(p) == 0:
        return p
    out = np.empty_like(p)
    head = min(n - 1, len(p))
    for t in range(head):  # the first frames: fewer than n in the window
        out[t] = p[0] if t == 0 else np.mean(p[: t + 1], axis=0)
    if len(p) >= n:
        out[n - 1:] = np.mean(np.stack([p[k: len(p) - n + 1 + k] for k in range(n)]), axis=0)
    return out


def _onsets(pmax: np.ndarray, arg: np.ndarray, ignored: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(frames, class indexes) of the detections `Detector.update` makes at this threshold."""
    acc = (pmax > threshold) & ~ignored[arg]
    lab = np.where(acc, arg, -1)
    prev = np.concatenate([[-1], lab[:-1]])
    t = np.nonzero(acc & (lab != prev))[0]
    return t, lab[t]


def sweep(probs: np.ndarray, hop_s: float, events: Sequence[Event], duration_s: float, categories: Sequence[str],
          thresholds: Sequence[float] = DEFAULT_THRESHOLDS, smoothings: Sequence[int] = DEFAULT_SMOOTHINGS,
          ignore: Sequence[str] = (), tolerance_s: float = 0.5) -> list[OperatingPoint]:
    """Score every (smoothing, threshold) on (frames, classes) outputs of the stream."""
    cats = list(categories)
    if probs.ndim != 2 or probs.shape[1] != len(cats):
        raise ValueError(f"probabilities must be (frames, {len(cats)}), got {probs.shape}")
    for th in thresholds:
        if not 0.0 <= th <= 1.0:
            raise ValueError(f"thresholds must be in [0, 1], got {th}")
    for n in smoothings:
        if n < 0:
            raise ValueError(f"smoothing must be >= 0 frames, got {n}")
    ignored = np.array([c in ignore for c in cats], dtype=bool)
    order = sorted(range(len(events)), key=lambda i: events[i].start_s)
    evs = [events[i] for i in order]  # detection_metrics takes the first match in list order = time order
    starts = np.array([e.start_s for e in evs])
    reach = np.maximum.accumulate(np.array([e.end_s + tolerance_s for e in evs])) if evs else np.zeros(0)
    index = {c: i for i, c in enumerate(cats)}
    ev_class = np.array([index.get(e.label, -1) for e in evs], dtype=np.int64)
    positive = np.array([e.label in index and e.label not in ignore for e in evs], dtype=bool)
    out = []
    for n in smoothings:
        sm = smoothed(probs, n)
        arg = sm.argmax(axis=1) if len(sm) else np.zeros(0, np.int64)
        pmax = sm[np.arange(len(sm)), arg] if len(sm) else np.zeros(0, np.float32)
        for th in thresholds:
            frames, classes = _onsets(pmax, arg, ignored, th)
            matched = np.zeros(len(evs), dtype=bool)
            fa = 0
            for t, c in zip((frames + 1) * hop_s, classes):
                lo, hi = int(np.searchsorted(reach, t, "left")), int(np.searchsorted(starts, t, "right"))
                for i in range(lo, hi):
                    if not matched[i] and ev_class[i] == c and evs[i].end_s + tolerance_s >= t:
                        matched[i] = True
                        break
                else:
                    fa += 1
            hits = int((matched & positive).sum())
            out.append(OperatingPoint(float(th), int(n), hits, int(positive.sum()) - hits, fa, float(duration_s)))
    return out


def choose(points: Sequence[OperatingPoint], target_fa_per_hour: float) -> tuple[OperatingPoint, bool]:
    """The point with the lowest FRR at most `target_fa_per_hour` (met = True); when none reaches it,
    the one with the fewest false accepts (then the lowest FRR)."""
    if not points:
        raise ValueError("no operating points to choose from")
    ok = [p for p in points if p.fa_per_hour <= target_fa_per_hour + 1e-9]
    met = bool(ok)
    if met:
        best = min((p.frr, p.smoothing) for p in ok)
        tied = [p for p in ok if (p.frr, p.smoothing) == best]
        fewest = min(p.false_accepts for p in tied)
        tied = sorted((p for p in tied if p.false_accepts == fewest), key=lambda p: p.threshold)
    else:
        fewest = min(p.false_accepts for p in points)
        cand = [p for p in points if p.false_accepts == fewest]
        best = min((p.frr, p.smoothing) for p in cand)
        tied = sorted((p for p in cand if (p.frr, p.smoothing) == best), key=lambda p: p.threshold)
    return tied[(len(tied) - 1) // 2], met


def calibrate(probs: np.ndarray, hop_s: float, events: Sequence[Event], duration_s: float,
              categories: Sequence[str], target_fa_per_hour: float = 1.0,
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS, smoothings: Sequence[int] = DEFAULT_SMOOTHINGS,
              ignore: Sequence[str] | None = None, tolerance_s: float = 0.5) -> Calibration:
    if not target_fa_per_hour >= 0:
        raise ValueError(f"target false accepts per hour must be >= 0, got {target_fa_per_hour}")
    ign = tuple(default_ignore(categories) if ignore is None else ignore)
    points = sweep(probs, hop_s, events, duration_s, categories, thresholds, smoothings, ign, tolerance_s)
    chosen, met = choose(points, target_fa_per_hour)
    positives = sum(1 for e in events if e.label in categories and e.label not in ign)
    others = len(events) - positives
    return Calibration(tuple(points), chosen, float(target_fa_per_hour), met, positives, others,
                       float(duration_s), ign)


def run_stream(spotter, samples: np.ndarray, *, chunk_s: float = 10.0, progress=None, cancel=None) -> np.ndarray:
    """The classifier's (frames, classes) outputs over a long stream from a fresh state, in chunks so
    that a long stream shows progress (done, total seconds) and can be cancelled."""
    from core.progress import check_cancel

    spotter.reset()
    hop = spotter.hop_length
    step = max(1, int(chunk_s * spotter.sample_rate) // hop) * hop
    total = len(samples) // hop * hop
    out = []
    for i in range(0, total, step):
        check_cancel(cancel)
        _, probs = spotter.process(samples[i: min(i + step, total)])
        out.append(probs)
        if progress:
            progress(int(min(i + step, total) / spotter.sample_rate), int(total / spotter.sample_rate))
    return np.concatenate(out) if out else np.zeros((0, spotter.n_classes), np.float32)


def calibrate_on_clips(spotter, categories: Sequence[str], clips: Sequence[tuple[os.PathLike, str]], *,
                       noise_files: Sequence[os.PathLike] | None = None, snr_db: float = 20.0,
                       gap_s: tuple[float, float] = (0.5, 1.5), seed: int = 0, target_fa_per_hour: float = 1.0,
                       thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                       smoothings: Sequence[int] = DEFAULT_SMOOTHINGS, ignore: Sequence[str] | None = None,
                       progress=None, cancel=None) -> Calibration:
    """Assemble the stream from labelled clips (core.evaluate.stream), run the spotter over it once,
    sweep and choose."""
    from core.errors import DataError
    from core.evaluate.stream import assemble_stream

    stream = assemble_stream(list(clips), spotter.sample_rate, gap_s=gap_s,
                             noise_files=list(noise_files) if noise_files else None, snr_db=snr_db, seed=seed)
    if not stream.events:
        raise DataError("none of the clips could be read: nothing to calibrate on")
    probs = run_stream(spotter, stream.samples, progress=progress, cancel=cancel)
    cal = calibrate(probs, spotter.frame_duration_s, stream.events, stream.duration_s, categories,
                    target_fa_per_hour, thresholds, smoothings, ignore)
    if not cal.positives:
        raise DataError(f"none of the clips is of a keyword of the model ({', '.join(categories)}): "
                        "nothing to measure false rejections on")
    return cal


def with_detector(classifier, cal: Calibration, categories: Sequence[str] | None = None):
    """A copy of the classifier graph carrying the chosen threshold and smoothing in its metadata
    (and the categories, when it did not carry them)."""
    from core.pipeline import DETECTOR_KEY

    g = classifier.copy()
    g.metadata[DETECTOR_KEY] = cal.stored()
    if categories and not g.metadata.get("categories"):
        g.metadata["categories"] = list(categories)
    return g


def plot_det(cal: Calibration, path: str | os.PathLike, title: str = "") -> None:
    """The DET curve (false rejection rate against false accepts per hour, one line per smoothing)
    with the target and the chosen point, as a PNG (matplotlib's Agg canvas, written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from core.fsutil import atomic_path

    fig = Figure(figsize=(7, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    floor = cal.no_fa_floor
    for n in cal.smoothings:
        pts = sorted(cal.curve(n), key=lambda p: p.threshold)
        ax.plot([max(p.fa_per_hour, floor) for p in pts], [100 * p.frr for p in pts], marker=".", ms=3, lw=1.2,
                label=f"smoothing {n}" if n > 1 else "no smoothing")
    c = cal.chosen
    ax.plot([max(c.fa_per_hour, floor)], [100 * c.frr], "o", ms=9, mfc="none", mec="crimson", mew=2,
            label=f"chosen: threshold {c.threshold:g}, smoothing {c.smoothing}")
    ax.axvline(max(cal.target_fa_per_hour, floor), color="gray", ls="--", lw=1,
               label=f"target {cal.target_fa_per_hour:g} FA/h")
    ax.axvline(floor, color="lightgray", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour (dotted: none; 1 FA = {cal.fa_resolution_per_hour:.2g}/h)")
    ax.set_ylabel("false rejection rate (%)")
    ax.set_title(title or f"DET: {cal.positives} keywords, {cal.others} other words, "
                          f"{cal.duration_s / 60:.1f} min")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
