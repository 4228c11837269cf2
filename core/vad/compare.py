"""Reset per clip vs continuous vs continuous + VAD, side by side (ELL's table: ~88 / ~70 / ~85 %).

- reset: the classifier without its VAD, state reset before every clip (eval_test --reset);
- continuous: the classifier without its VAD, one continuous stream;
- vad: continuous, with the model's own VAD, or one added with the given / default parameters.

On a list, each mode runs the real pipeline (KeywordSpotter: compiled when possible) through
core.evaluate.passrate. On an assembled stream, the modes run through core.vad.runner: "reset"
restarts the classifier at each clip's start in the stream (the oracle), "vad" at the VAD's resets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.evaluate.passrate import PassRate, evaluate_clips
from core.graph.ir import Graph
from core.pipeline import KeywordSpotter
from core.vad.analysis import levels_of, reset_frames, signals_from_levels
from core.vad.model import add_vad, frame_timing, model_vad, strip_vad
from core.vad.params import VadParams
from core.vad.runner import ResetRunner
from core.vad.streams import Accuracy, FeatureStream, window_accuracy

MODES = ("reset", "continuous", "vad")
TITLES = {"reset": "reset per clip", "continuous": "continuous", "vad": "continuous + VAD"}


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--modes takes a comma list of {', '.join(MODES)}, got {text!r}")
    return modes


@dataclass
class ModeGraphs:
    plain: Graph  # the classifier without VAD
    vad: Graph  # with the VAD used for the "vad" mode
    params: VadParams
    source: str  # where the VAD parameters came from
    frame_duration_s: float


def mode_graphs(classifier: Graph, featurizer: Graph | None = None, params: VadParams | None = None,
                featurizer_path: str | os.PathLike | None = None) -> ModeGraphs:
    """The plain classifier and the one with the VAD to compare: `params` when given (replacing
    any VAD the model has), else the model's own VAD, else ELL's defaults added."""
    own = model_vad(classifier)
    if params is None and own is not None:
        return ModeGraphs(strip_vad(classifier), classifier, own[0], "the model's own VAD", own[1])
    frame_s, sr = frame_timing(classifier, featurizer, featurizer_path)
    p = params or VadParams()
    source = "given parameters" if params is not None else "ELL's default parameters (added)"
    return ModeGraphs(strip_vad(classifier), add_vad(classifier, p, frame_s, sr), p, source, frame_s)


def gap_recovered(reset: float, continuous: float, vad: float) -> float | None:
    """The share of the continuous -> reset gap that the VAD wins back."""
    gap = reset - continuous
    return (vad - continuous) / gap if gap > 0 else None


def compare_on_list(featurizer: Graph, graphs: ModeGraphs, categories: list[str],
                    clips: list[tuple[Path, str]], modes: tuple[str, ...] = MODES, decision: str = "best",
                    backend: str = "auto", attribution: str = "onset",
                    progress: Callable[[str, int, PassRate], None] | None = None) -> dict[str, PassRate]:
    out = {}
    for mode in modes:
        spotter = KeywordSpotter(featurizer, graphs.vad if mode == "vad" else graphs.plain, backend=backend)
        cb = (lambda k, res, mode=mode: progress(mode, k, res)) if progress else None
        out[mode] = evaluate_clips(spotter, categories, clips, reset=mode == "reset", decision=decision,
                                   attribution=attribution, progress=cb)
    return out


@dataclass
class StreamComparison:
    stream: FeatureStream
    accuracy: dict[str, Accuracy] = field(default_factory=dict)
    resets: dict[str, int] = field(default_factory=dict)
    probs: dict = field(default_factory=dict)  # mode -> (T, classes) outputs


def compare_on_stream(stream: FeatureStream, graphs: ModeGraphs, categories: list[str],
                      modes: tuple[str, ...] = MODES, backend: str = "auto") -> StreamComparison:
    runner = ResetRunner(graphs.plain, stream.features, backend=backend)
    out = StreamComparison(stream)
    for mode in modes:
        if mode == "reset":
            resets = stream.oracle_resets()
        elif mode == "continuous":
            resets = reset_frames([])
        else:
            from core.features.vad import reset_trigger

            sig = signals_from_levels(levels_of(stream.features), graphs.params.vad, graphs.frame_duration_s)
            trig = sig if graphs.params.reset.is_ell else reset_trigger(sig, graphs.params.reset)[0]
            resets = reset_frames(trig)
        out.accuracy[mode] = window_accuracy(lambda lo, hi, r=resets: runner.window(r, lo, hi), stream,
                                             categories)
        out.resets[mode] = len(resets)
        out.probs[mode] = runner.run(resets)
    return out
