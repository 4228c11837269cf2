"""Two models side by side on held-out sets (`kws versus`): pass rate reset per clip for both,
and both as one continuous stream (shuffled, seeded) with their own VADs, the way a user hears
them. Reset per clip compares the classifiers: both VADs are removed by default (with the state
reset before every clip a VAD can only wipe it inside a word). Continuous rates are the mean over
`shuffles` orders (seeds seed, seed + 1, ...): on a few dozen clips one order moves the rate by a
clip or two; a word carried over from one clip into the next counts for the first (as `kws eval`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.evaluate.passrate import evaluate_clips, play_order
from core.graph.ir import Graph
from core.pipeline import KeywordSpotter


@dataclass(frozen=True)
class Model:
    featurizer: Graph
    classifier: Graph
    categories: list[str]


@dataclass(frozen=True)
class VersusRow:
    name: str
    clips: int
    ours_reset: float
    other_reset: float
    ours_continuous: float  # continuous stream, shuffled, with the model's own VAD (if it has one)
    other_continuous: float

    def to_dict(self) -> dict:
        return asdict(self)


def versus(ours: Model, other: Model, sets: dict[str, list[tuple[Path, str]]], seed: int = 0,
           on_row: Callable[[VersusRow], None] | None = None, keep_vad: bool = False,
           shuffles: int = 1) -> list[VersusRow]:
    from core.vad.model import strip_vad

    ours_reset = ours.classifier if keep_vad else strip_vad(ours.classifier)
    other_reset = other.classifier if keep_vad else strip_vad(other.classifier)
    rows = []
    for name, clips in sets.items():
        a = evaluate_clips(KeywordSpotter(ours.featurizer, ours_reset), ours.categories, clips, reset=True)
        b = evaluate_clips(KeywordSpotter(other.featurizer, other_reset), other.categories, clips, reset=True)
        c = d = 0.0
        for k in range(shuffles):
            shuffled, _ = play_order(clips, continuous=True, seed=seed + k)
            c += evaluate_clips(KeywordSpotter(ours.featurizer, ours.classifier), ours.categories, shuffled,
                                reset=False).rate / shuffles
            d += evaluate_clips(KeywordSpotter(other.featurizer, other.classifier), other.categories, shuffled,
                                reset=False).rate / shuffles
        row = VersusRow(name, len(a.results), a.rate, b.rate, c, d)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


HEADER = (f"{'held-out set':40s} {'clips':>6s} {'ours reset':>11s} {'other reset':>12s} {'ours cont.+VAD':>15s} "
          f"{'other cont.+VAD':>16s}")


def row_text(r: VersusRow) -> str:
    return (f"{r.name:40s} {r.clips:6d} {100 * r.ours_reset:10.1f}% {100 * r.other_reset:11.1f}% "
            f"{100 * r.ours_continuous:14.1f}% {100 * r.other_continuous:15.1f}%")
