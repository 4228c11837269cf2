"""Pass rate over labelled clips (ELL's eval_test): per clip, the label of the best frame (or of
the mean over frames), with the model reset per clip or run as one continuous stream.

A continuous stream over a list sorted by word flatters the model (each clip follows clips of the
same word, so the state carried over already points the right way): `play_order` shuffles the
clips (seeded) for the continuous modes. In a continuous stream a word still reported when the
next clip starts (its clip ended on it: the model says a word a frame or two after hearing it)
counts for the clip where it began, not the next one (ATTRIBUTIONS: "onset"; "frame" is ELL's
eval_test, every frame for the clip it lies in). Clips that cannot be read are skipped and
counted; `skipped_summary` names the first few."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.audio.formats import is_audio_name
from core.audio.wav import read_wav
from core.data.dataset import BACKGROUND_LABELS
from core.errors import DataError, KwsError
from core.pipeline import KeywordSpotter

DECISIONS = ("best", "mean")
ATTRIBUTIONS = ("onset", "frame")


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
    categories: list[str] = field(default_factory=list)
    results: list[ClipResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def rate(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0

    @property
    def time_per_frame_s(self) -> float:
        return self.seconds / self.frames if self.frames else 0.0

    def confusion(self) -> np.ndarray:
        """(expected, predicted) counts; the extra last column counts 'no prediction'."""
        n = len(self.categories)
        m = np.zeros((n, n + 1), dtype=int)
        idx = {c: i for i, c in enumerate(self.categories)}
        for r in self.results:
            if r.expected in idx:
                m[idx[r.expected], idx.get(r.predicted, n) if r.predicted is not None else n] += 1
        return m

    def per_class(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for r in self.results:
            ok, total = out.get(r.expected, (0, 0))
            out[r.expected] = (ok + r.passed, total + 1)
        return out

    def to_dict(self) -> dict:
        return {
            "pass_rate": self.rate, "passed": self.passed, "total": len(self.results),
            "time_per_frame_s": self.time_per_frame_s, "categories": self.categories,
            "per_class": {k: {"passed": a, "total": b} for k, (a, b) in self.per_class().items()},
            "confusion": self.confusion().tolist(), "skipped": self.skipped,
            "clips": [r.__dict__ for r in self.results],
        }


def decisive_frames(probs: np.ndarray, quiet: Sequence[int] = ()) -> np.ndarray:
    """(clips, frames) mask of the frames ELL's eval_test looks at in clips of frame probabilities
    (clips, frames, classes): those a class not in `quiet` (background) wins, or every frame of a
    clip that a quiet class wins throughout."""
    loud = ~np.isin(np.asarray(probs).argmax(axis=2), list(quiet))
    return loud | ~loud.any(axis=1, keepdims=True)


def best_frames(probs: np.ndarray, quiet: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """ELL's eval_test rule for clips of frame probabilities (clips, frames, classes): per clip, the
    class and probability of the most confident of its decisive_frames."""
    probs = np.asarray(probs)
    top, won = probs.max(axis=2), probs.argmax(axis=2)
    top_loud = np.where(decisive_frames(probs, quiet), top, -np.inf)
    at = top_loud.argmax(axis=1)
    rows = np.arange(len(probs))
    return won[rows, at], top[rows, at]


def attribution_text(attribution: str) -> str:
    """How a continuous run attributes a word that runs over a clip's end, in words."""
    return ("a word carried into the next clip counts for its own" if attribution == "onset"
            else "every frame counts for the clip it lies in (ELL)")


def carried_over(probs: np.ndarray, before: int | None, quiet: Sequence[int] = ()) -> int:
    """How many leading frames of a clip's (frames, classes) probabilities go on saying `before`,
    the word the stream's previous frame said (0 when that was a quiet class or nothing): the end
    of an event that began before the clip."""
    if before is None or before in quiet:
        return 0
    top = np.asarray(probs).argmax(axis=1)
    differ = np.flatnonzero(top != before)
    return int(differ[0]) if len(differ) else len(top)


def attributed(probs: np.ndarray, before: int | None, quiet: Sequence[int] = ()) -> np.ndarray:
    """The frames a clip is judged on in a continuous stream: without the word carried over from
    before it (carried_over), unless only quiet frames would be left (then the whole clip: the
    same word said twice in a row must not vanish)."""
    probs = np.asarray(probs)
    m = carried_over(probs, before, quiet)
    if m == 0 or not (~np.isin(probs[m:].argmax(axis=1), list(quiet))).any():
        return probs
    return probs[m:]


def decide(probs: np.ndarray, categories: list[str], decision: str = "best",
           threshold: float = 0.0, before: int | None = None) -> tuple[str | None, float]:
    """best (ELL's eval_test): the label of the most confident frame among the frames a word wins,
    frames won by the background class are passed over (ELL's classifier reports nothing for
    them); a clip that no word wins in any frame is background. mean: argmax of the mean over
    frames. `before`: in a continuous stream, the class the frame before the clip said (its
    carried-over word is not this clip's: attributed)."""
    if len(probs) == 0:
        return None, 0.0
    probs = np.asarray(probs)
    quiet = [k for k, c in enumerate(categories) if c in BACKGROUND_LABELS]
    if before is not None:
        probs = attributed(probs, before, quiet)
    if decision == "mean":
        m = probs.mean(axis=0)
        i = int(m.argmax())
        p = float(m[i])
    else:
        won, top = best_frames(probs[None], quiet)
        i, p = int(won[0]), float(top[0])
    return (categories[i], p) if p > threshold else (None, p)


def labelled_clips(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """Speech Commands layout: every audio file in every non-underscore sub-folder, labelled by folder."""
    root = Path(folder)
    return [(p, d.name) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith("_")
            for p in sorted(d.iterdir()) if is_audio_name(p) and p.is_file()]


def read_list(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """(wav, label) pairs of a list file (see core.data.lists.read_list); empty lists are an error."""
    from core.data.lists import read_list as entries

    clips = [(e.path, e.label) for e in entries(path)]
    if not clips:
        raise DataError(f"{path}: list file names no wav files")
    return clips


def evaluate_clips(spotter: KeywordSpotter, categories: list[str], clips: Iterable[tuple[Path, str]],
                   reset: bool = True, decision: str = "best", attribution: str = "onset",
                   progress: Callable[[int, PassRate], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> PassRate:
    """Run every clip; with reset=False the clips form one continuous stream (state carries over)
    and a word carried over from one clip into the next counts for the first (attribution
    "onset"; "frame": for the clip each frame lies in, ELL's eval_test)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if attribution not in ATTRIBUTIONS:
        raise ValueError(f"attribution must be one of {ATTRIBUTIONS}, got {attribution!r}")
    out = PassRate(list(categories))
    spotter.reset()
    before = None  # the class the stream's last frame said
    for k, (path, label) in enumerate(clips):
        if should_stop and should_stop():
            break
        try:
            x, _ = read_wav(path, spotter.sample_rate)
        except KwsError as e:  # missing, unreadable or refused: skipped, counted, never the end of the run
            out.skipped.append(str(e))
            continue
        if reset:
            spotter.reset()
        t0 = time.perf_counter()
        _, probs = spotter.process(x)
        out.seconds += time.perf_counter() - t0
        out.frames += len(probs)
        carry = before if not reset and attribution == "onset" and decision == "best" else None
        pred, p = decide(probs, categories, decision, before=carry)
        if len(probs):
            before = int(np.argmax(probs[-1]))
        out.results.append(ClipResult(str(path), label, pred, p))
        if progress:
            progress(k + 1, out)
    if out.skipped and not out.results and not (should_stop and should_stop()):
        raise DataError(f"none of the {len(out.skipped)} clips could be read (first: {out.skipped[0]})")
    return out


def play_order(clips: Sequence[tuple[Path, str]], *, continuous: bool, shuffle: bool = True,
               seed: int = 0) -> tuple[list[tuple[Path, str]], str]:
    """(the clips in the order they are played, how that order was made). Reset per clip does not
    depend on the order (list order kept); a continuous stream is shuffled with `seed` unless
    `shuffle` is False."""
    clips = list(clips)
    if not continuous:
        return clips, "list order (reset per clip: the order does not matter)"
    if not shuffle:
        return clips, "list order (not shuffled)"
    perm = np.random.default_rng(seed).permutation(len(clips))
    return [clips[i] for i in perm], f"shuffled (seed {seed})"


def skipped_summary(skipped: Sequence[str], show: int = 3, what: str = "clips") -> str:
    """'skipped N unreadable clips:' and the first `show` reasons, one per line, plus how many more."""
    if not skipped:
        return ""
    more = f"\n  ... and {len(skipped) - show} more" if len(skipped) > show else ""
    return f"skipped {len(skipped)} unreadable {what}:\n  " + "\n  ".join(skipped[:show]) + more


def confusion_text(result: PassRate, width: int = 4) -> str:
    """Rows = expected, columns = predicted (by index; '-' = nothing predicted)."""
    m = result.confusion()
    cats = result.categories
    name_w = max(len(c) for c in cats) if cats else 4
    head = " " * (name_w + 1) + "".join(f"{i:>{width}}" for i in range(len(cats))) + f"{'-':>{width}}"
    rows = [head]
    for i, c in enumerate(cats):
        if m[i].sum():
            rows.append(f"{c:>{name_w}} " + "".join(f"{v if v else '.':>{width}}" for v in m[i]))
    return "\n".join(rows)
