"""Automatic VAD tuning: search the seven parameters (optionally the reset rule too) to maximise
keyword accuracy on continuous feature streams (or segmentation F1 against the spoken words).

    data = prepare(featurizer, classifier, categories, clips, noise_files=..., snrs=(20, 10))
    result = tune_vad(data, start=VadParams(), trials=200, seed=0, progress=cb, cancel=event)

Fast because nothing heavy is repeated: the streams are featurized once, the VAD level is linear
in the features (computed once), the VAD tracker is a scalar loop over cached levels, and the
classifier runs come from a cache keyed by reset frame (core.vad.runner); settings that give
the same resets are scored once. The search is seeded random sampling in log space followed by
coordinate descent with a shrinking log step; a run is reproducible from (data, start, trials,
seed). Cancelling (a threading.Event) stops early and returns the best so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import KwsError
from core.evaluate.passrate import play_order
from core.features.vad import RESET_ON, reset_trigger
from core.graph.ir import Graph
from core.progress import check_cancel
from core.vad.analysis import levels_of, reset_frames, signals_from_levels
from core.vad.model import frame_timing, recurrent_nodes
from core.vad.params import PARAM_NAMES, VadParams
from core.vad.runner import ResetRunner
from core.vad.streams import FeatureStream, assembled_stream, list_stream, segment_score, window_accuracy

OBJECTIVES = ("accuracy", "f1")
# log-space search bounds; level_threshold's upper bound comes from the data
BOUNDS = {
    "tau_up": (0.05, 50.0),
    "tau_down": (0.005, 5.0),
    "large_input": (0.5, 50.0),
    "gain_att": (1e-5, 1.0),
    "threshold_up": (0.5, 50.0),
    "threshold_down": (0.05, 20.0),
    "level_threshold": (1e-4, 1.0),
}
HOLD_MAX = 20


@dataclass
class TuneData:
    """Streams (featurized once), their VAD levels, and classifier runners for them."""

    streams: list[FeatureStream]
    categories: list[str]
    frame_duration_s: float
    levels: list[np.ndarray] = field(default_factory=list)
    runners: list[ResetRunner] | None = None

    def __post_init__(self):
        if not self.levels:
            self.levels = [levels_of(s.features) for s in self.streams]

    @property
    def n_words(self) -> int:
        return sum(len(s.labels) for s in self.streams)


def prepare(featurizer: Graph, classifier: Graph | None, categories: list[str],
            clips: list[tuple[Path, str]], *,
            sample_rate: int, noise_files: list[Path] | None = None, snrs: tuple[float, ...] = (20.0,),
            gap_s: tuple[float, float] = (0.5, 1.5), seed: int = 0, back_to_back: bool = False,
            backend: str = "auto", progress: Callable[[int, int], None] | None = None,
            cancel=None) -> TuneData:
    """One assembled stream per SNR (seed + i; silent gaps when there is no noise), plus the
    clips back to back when asked (shuffled with `seed`, as `kws eval` plays a continuous list);
    a ResetRunner per stream when a classifier is given."""
    if classifier is not None and not recurrent_nodes(classifier):
        raise KwsError("the classifier has no GRU or LSTM layer: a VAD reset changes nothing")
    snr_list = list(snrs) if noise_files else [None]
    total = len(snr_list) + int(back_to_back)
    streams = []
    for i, snr in enumerate(snr_list):
        check_cancel(cancel)
        streams.append(assembled_stream(featurizer, clips, sample_rate, noise_files=noise_files,
                                        snr_db=snr if snr is not None else 0.0, gap_s=gap_s, seed=seed + i))
        if progress:
            progress(i + 1, total)
    if back_to_back:
        order, _ = play_order(clips, continuous=True, seed=seed)
        streams.append(list_stream(featurizer, order, sample_rate, cancel=cancel))
        if progress:
            progress(total, total)
    fd = streams[0].frame_duration_s
    if classifier is not None:
        f_cls, _ = frame_timing(classifier) if _has_timing(classifier) else (fd, sample_rate)
        if abs(f_cls - fd) > 1e-9:
            raise KwsError(f"the classifier's frames are {1000 * f_cls:g} ms but the featurizer's are "
                           f"{1000 * fd:g} ms")
    runners = None
    if classifier is not None:
        runners = [ResetRunner(classifier, s.features, backend=backend) for s in streams]
    return TuneData(streams, list(categories), fd, runners=runners)


def _has_timing(g: Graph) -> bool:
    try:
        frame_timing(g)
        return True
    except KwsError:
        return False


# ------------------------------------------------------------------ scoring
@dataclass(frozen=True)
class Score:
    objective: str
    accuracy: float | None  # fraction of words right (None without a classifier)
    correct: int | None
    margin: float | None
    f1: float | None
    words: int
    resets: int

    def key(self) -> tuple:
        if self.objective == "f1":
            return (round(self.f1 or 0.0, 12), self.correct or 0, self.margin or 0.0)
        return (self.correct, round(self.margin, 12), round(self.f1 or 0.0, 12))

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "correct": self.correct, "words": self.words,
                "margin": self.margin, "segmentation_f1": self.f1, "resets": self.resets}


def _held(signal: np.ndarray, params: VadParams) -> np.ndarray:
    """The signal with the hangover (what the offset reset follows)."""
    if params.reset.hold_frames == 0:
        return signal
    held, _ = reset_trigger(signal, params.reset.__class__("offset", params.reset.hold_frames))
    return held


class Scorer:
    """Scores VAD settings on prepared data; identical reset patterns are scored once."""

    def __init__(self, data: TuneData, objective: str = "accuracy"):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective == "accuracy" and data.runners is None:
            raise ValueError("the accuracy objective needs a classifier")
        if objective == "f1" and any(s.words is None for s in data.streams):
            raise ValueError("segmentation F1 needs assembled streams (known word boundaries)")
        self.data, self.objective = data, objective
        self._acc_cache: dict[bytes, tuple[int, float]] = {}

    def accuracy_for_resets(self, resets: list[np.ndarray]) -> tuple[int, float]:
        """(words right, summed margin) over all streams for these reset frames."""
        key = b"|".join(r.astype(np.int64).tobytes() for r in resets)
        hit = self._acc_cache.get(key)
        if hit is None:
            correct, margin = 0, 0.0
            for s, runner, r in zip(self.data.streams, self.data.runners, resets):
                acc = window_accuracy(lambda lo, hi, r=r, runner=runner: runner.window(r, lo, hi), s,
                                      self.data.categories)
                correct += acc.correct
                margin += acc.margin * acc.total
            hit = self._acc_cache[key] = (correct, margin)
        return hit

    def baseline(self, kind: str) -> Score:
        """'continuous' (no resets) or 'reset' (restart at every clip, the upper reference)."""
        resets = [np.zeros(0, np.int64) if kind == "continuous" else s.oracle_resets()
                  for s in self.data.streams]
        correct, margin = self.accuracy_for_resets(resets)
        n = self.data.n_words
        return Score("accuracy", correct / n, correct, margin / n, None, n, sum(len(r) for r in resets))

    def __call__(self, params: VadParams) -> Score:
        fd = self.data.frame_duration_s
        resets, matched, segs, words = [], 0, 0, 0
        for s, lv in zip(self.data.streams, self.data.levels):
            sig = signals_from_levels(lv, params.vad, fd)
            trig = sig if params.reset.is_ell else reset_trigger(sig, params.reset)[0]
            resets.append(reset_frames(trig))
            if s.words is not None:
                seg = segment_score(_held(sig, params), s)
                matched, segs, words = matched + seg.matched, segs + seg.segments, words + seg.words
        p, r = (matched / segs if segs else 0.0), (matched / words if words else 0.0)
        f1 = 2 * p * r / (p + r) if words and p + r else (0.0 if words else None)
        n = self.data.n_words
        if self.data.runners is not None:
            correct, margin = self.accuracy_for_resets(resets)
            return Score(self.objective, correct / n, correct, margin / n, f1, n, sum(len(x) for x in resets))
        return Score(self.objective, None, None, None, f1, n, sum(len(x) for x in resets))


# ------------------------------------------------------------------ search
@dataclass
class Trial:
    params: VadParams
    score: Score


@dataclass
class TuneResult:
    start: Trial
    best: Trial
    trials: list[Trial]
    baselines: dict[str, Score]
    objective: str
    seed: int
    cancelled: bool = False

    def summary(self) -> dict:
        return {
            "objective": self.objective, "seed": self.seed, "trials": len(self.trials),
            "cancelled": self.cancelled,
            "start": {"params": self.start.params.to_dict(), **self.start.score.to_dict()},
            "best": {"params": self.best.params.to_dict(), **self.best.score.to_dict()},
            "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
        }


def _bounds(data: TuneData) -> dict[str, tuple[float, float]]:
    b = dict(BOUNDS)
    top = max(float(np.max(lv)) if len(lv) else 1.0 for lv in data.levels)
    b["level_threshold"] = (1e-4, max(1e-3, top))
    return b


def _to_log(params: VadParams, bounds) -> np.ndarray:
    v = params.vad.to_dict()
    return np.array([math.log(min(max(v[k], bounds[k][0]), bounds[k][1])) for k in PARAM_NAMES])


def _from_log(x: np.ndarray, hold: int, mode: str, base: VadParams) -> VadParams:
    vals = {k: float(math.exp(v)) for k, v in zip(PARAM_NAMES, x)}
    vals["threshold_down"] = min(vals["threshold_down"], vals["threshold_up"])
    return base.with_values(**vals, hold_frames=int(hold), reset_on=mode)


def tune_vad(data: TuneData, start: VadParams | None = None, *, trials: int = 200, seed: int = 0,
             objective: str = "accuracy", search_hold: bool = False, search_reset_on: bool = False,
             only_hold: bool = False, progress: Callable[[int, int], None] | None = None,
             cancel=None) -> TuneResult:
    """Maximise `objective` over the seven parameters, plus hold_frames (0-20) with
    `search_hold` and reset_on (offset / onset) with `search_reset_on`; otherwise those stay as
    in `start` (default: ELL's parameters). `only_hold` keeps everything of `start` but the
    hangover and tries every hold_frames from 0 to 20 (ties: the shortest). Returns the best
    setting and the baselines."""
    if only_hold:
        trials = HOLD_MAX + 2  # the start, then every hangover
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    start = start or VadParams()
    scorer = Scorer(data, objective)
    rng = np.random.default_rng(seed)
    bounds = _bounds(data)
    lo = np.array([math.log(bounds[k][0]) for k in PARAM_NAMES])
    hi = np.array([math.log(bounds[k][1]) for k in PARAM_NAMES])
    hist: list[Trial] = []
    seen: dict[tuple, Score] = {}
    cancelled = False

    def evaluate(params: VadParams) -> Trial:
        key = tuple(params.to_dict().values())
        if key not in seen:
            seen[key] = scorer(params)
        t = Trial(params, seen[key])
        hist.append(t)
        if progress:
            progress(len(hist), trials)
        return t

    def stop() -> bool:
        nonlocal cancelled
        cancelled = cancelled or bool(cancel is not None and cancel.is_set())
        return cancelled or len(hist) >= trials

    def result(first: Trial, best: Trial) -> TuneResult:
        baselines = {}
        if data.runners is not None:
            baselines = {"reset": scorer.baseline("reset"), "continuous": scorer.baseline("continuous")}
        return TuneResult(first, best, hist, baselines, objective, seed, cancelled)

    first = evaluate(start)
    best = first
    if only_hold:
        for h in range(HOLD_MAX + 1):
            if stop():
                break
            t = evaluate(start.with_values(hold_frames=h))
            shorter = t.score.key() == best.score.key() and h < best.params.reset.hold_frames
            if t.score.key() > best.score.key() or shorter:
                best = t
        return result(first, best)
    cur = (_to_log(start, bounds), int(start.reset.hold_frames), start.reset.reset_on)
    # phase 1: random samples, log-uniform within the bounds
    n_random = max(0, (trials - 1) // 3)
    for _ in range(n_random):
        if stop():
            break
        x = rng.uniform(lo, hi)
        h = int(rng.integers(0, HOLD_MAX + 1)) if search_hold else cur[1]
        m = str(rng.choice(RESET_ON)) if search_reset_on else cur[2]
        t = evaluate(_from_log(x, h, m, start))
        if t.score.key() > best.score.key():
            best, cur = t, (x, h, m)
    # phase 2: coordinate descent from the best, log step halving after a sweep without gain
    step = math.log(2.0) * 2
    dims: list = list(range(len(PARAM_NAMES)))
    dims += (["hold"] if search_hold else []) + (["mode"] if search_reset_on else [])
    while not stop() and step > 1e-3:
        improved = False
        for d in [dims[i] for i in rng.permutation(len(dims))]:
            for sign in (1, -1):
                if stop():
                    break
                x, h, m = cur[0].copy(), cur[1], cur[2]
                if d == "hold":
                    h = int(np.clip(h + sign * max(1, round(step / math.log(2.0) * 2)), 0, HOLD_MAX))
                    if h == cur[1]:
                        continue
                elif d == "mode":
                    if sign < 0:
                        continue
                    m = RESET_ON[1 - RESET_ON.index(m)]
                else:
                    x[d] = float(np.clip(x[d] + sign * step, lo[d], hi[d]))
                    if x[d] == cur[0][d]:
                        continue
                t = evaluate(_from_log(x, h, m, start))
                if t.score.key() > best.score.key():
                    best, cur, improved = t, (x, h, m), True
                    break
        if not improved:
            step /= 2
    return result(first, best)
