"""Look after a folder of word folders (Speech Commands layout): what may be wrong with each clip,
and moving or deleting clips with the lists that name them kept in step.

`inspect_clip` measures one clip: its length, peak, the word the segmenter (core.data.segment)
finds in it and that word's level, a hash of its samples, and, given a model, the label the model
gives it (the best frame, as `kws eval` decides). `flag` turns that into flags:

    unreadable  the file cannot be read as audio (the reason is kept)
    silent      the loudest sample is below -50 dBFS
    no word     nothing rises above the clip's own noise floor like a word does
    too quiet   the word's level is below -45 dB (a full-scale sine is 0 dB; speech is ~-25)
    clipped     three or more samples at full scale
    too long    the file is longer than the clip length + 10 %, or the word fills more than 90 % of it
    too short   the file is shorter than half the clip length, or the word lasts under 0.15 s
    duplicate   the same samples as another clip (all but the first of a group in name order)
    disagrees   the model's label is another of its classes (only for labels the model knows)

`suspicion` orders clips for review (most suspicious first). `relabel_clip` / `delete_clip` move
or remove the file and rewrite every list file of the lists folder that names it (atomically);
a new label is appended to its categories.txt.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.audio.wav import read_wav, to_int16
from core.data.segment import Framing, SegmentConfig, Segmenter, next_free, safe_label
from core.errors import DataError
from core.fsutil import write_text_atomic

SILENT_PEAK = 10 ** (-50 / 20)
QUIET_LEVEL_DB = -45.0
CLIP_LIMIT = 0.999  # |sample| at or above this counts as clipped
FLAG_WEIGHTS = {"unreadable": 8.0, "silent": 6.0, "no word": 5.0, "duplicate": 4.0, "disagrees": 3.0, "clipped": 2.0,
                "too quiet": 2.0, "too long": 1.0, "too short": 1.5}
LIST_NAMES = ("training_list.txt", "validation_list.txt", "testing_list.txt")


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    label: str
    duration_s: float
    peak: float
    clipped_samples: int
    words: int  # words the segmenter finds
    word_s: float  # the longest word's length (0 when none)
    level_db: float  # that word's level (-inf when none)
    digest: str  # sha1 of the 16-bit samples
    predicted: str | None = None  # the model's label (None: no model, or no frame)
    probability: float = 0.0
    flags: tuple[str, ...] = field(default=())
    problem: str = ""  # why an unreadable clip could not be read

    @property
    def suspicion(self) -> float:
        s = sum(FLAG_WEIGHTS.get(f, 1.0) for f in self.flags)
        if "disagrees" in self.flags:
            s += self.probability  # a confident disagreement first
        return s


def inspect_clip(path: str | os.PathLike, label: str, framing: Framing | None = None,
                 spotter=None, categories: Sequence[str] = ()) -> ClipInfo:
    """Measure one clip (see the module doc); `spotter` (core.pipeline.KeywordSpotter) with its
    `categories` adds the model's label. A clip that cannot be read raises its AudioError."""
    p = Path(path)
    framing = framing or Framing()
    x, _ = read_wav(p, framing.sample_rate)
    digest = hashlib.sha1(to_int16(x).tobytes()).hexdigest()
    seg = Segmenter(framing, SegmentConfig(clip_s=max(1.0, len(x) / framing.sample_rate)))
    words = seg.push(x) + seg.flush()
    longest = max(words, key=lambda u: u.duration_s, default=None)
    predicted, prob = None, 0.0
    if spotter is not None:
        from core.evaluate.passrate import decide

        spotter.reset()
        _, probs = spotter.process(x)
        if probs is not None and len(probs):
            predicted, prob = decide(probs, list(categories), "best")
    return ClipInfo(p, label, len(x) / framing.sample_rate, float(np.max(np.abs(x))) if len(x) else 0.0,
                    int(np.count_nonzero(np.abs(x) >= CLIP_LIMIT)), len(words),
                    longest.duration_s if longest else 0.0, longest.level_db if longest else -np.inf,
                    digest, predicted, prob)


def unreadable(path: str | os.PathLike, label: str, why: str) -> ClipInfo:
    """A clip that cannot be read: flagged "unreadable" (first in the review order)."""
    return ClipInfo(Path(path), label, 0.0, 0.0, 0, 0, 0.0, -np.inf, f"unreadable:{path}", None, 0.0,
                    ("unreadable",), why)


def flag(info: ClipInfo, clip_s: float = 1.0, categories: Sequence[str] = (), duplicate: bool = False) -> ClipInfo:
    """The clip's flags (module doc); `duplicate` comes from `find_duplicates` over the whole set."""
    if "unreadable" in info.flags:
        return info
    f = []
    if info.peak < SILENT_PEAK:
        f.append("silent")
    elif info.words == 0:
        f.append("no word")
    elif info.level_db < QUIET_LEVEL_DB:
        f.append("too quiet")
    if info.clipped_samples >= 3:
        f.append("clipped")
    if info.duration_s > 1.1 * clip_s or (info.words and info.word_s > 0.9 * clip_s):
        f.append("too long")
    if info.duration_s < 0.5 * clip_s or (info.words and info.word_s < 0.15):
        f.append("too short")
    if duplicate:
        f.append("duplicate")
    if info.predicted is not None and info.label in categories and info.predicted != info.label:
        f.append("disagrees")
    return replace(info, flags=tuple(f))


def find_duplicates(infos: Iterable[ClipInfo]) -> set[Path]:
    """Every clip whose samples equal an earlier clip's (in path order): all but one of each group."""
    seen: dict[str, Path] = {}
    dup = set()
    for info in sorted(infos, key=lambda i: str(i.path)):
        if "unreadable" in info.flags:
            continue
        if info.digest in seen:
            dup.add(info.path)
        else:
            seen[info.digest] = info.path
    return dup


def by_suspicion(infos: Iterable[ClipInfo]) -> list[ClipInfo]:
    return sorted(infos, key=lambda i: (-i.suspicion, str(i.path)))


# ---------------------------------------------------------------- moving clips, keeping lists

def lists_in(folder: str | os.PathLike) -> list[Path]:
    """The list files (training/validation/testing) of a lists folder."""
    d = Path(folder)
    return [d / n for n in LIST_NAMES if (d / n).is_file()]


def _rewrite_lists(list_dir: Path | None, old: Path, new: Path | None, label: str | None) -> int:
    """Replace (or drop, when `new` is None) the lines naming `old` in every list of `list_dir`;
    append `label` to its categories.txt when missing. Returns the lines changed."""
    if list_dir is None:
        return 0
    from core.data.lists import read_list

    changed = 0
    target = old.resolve()
    for lp in lists_in(list_dir):
        lines = lp.read_text(encoding="utf-8").splitlines()
        entries = read_list(lp)  # skips blank and comment lines: walk the lines alongside
        out, k = [], 0
        for ln in lines:
            s = ln.strip()
            if not s or s.startswith("#"):
                out.append(ln)
                continue
            e = entries[k]
            k += 1
            if e.path.resolve() == target:
                changed += 1
                if new is not None:
                    out.append(Path(os.path.relpath(new.resolve(), lp.parent.resolve())).as_posix())
                continue
            out.append(ln)
        if len(out) != len(lines) or any(a != b for a, b in zip(out, lines)):
            write_text_atomic(lp, "".join(f"{ln}\n" for ln in out))
    cats = Path(list_dir) / "categories.txt"
    if changed and new is not None and label and cats.is_file():
        names = [ln.strip() for ln in cats.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if label not in names:
            write_text_atomic(cats, "".join(f"{n}\n" for n in names + [label]))
    return changed


def relabel_clip(path: str | os.PathLike, new_label: str, *, root: str | os.PathLike | None = None,
                 list_dir: str | os.PathLike | None = None) -> Path:
    """Move ROOT/old/NAME.wav to ROOT/new_label/ (renumbered when the name is taken there) and fix
    the lists of `list_dir`. ROOT defaults to the clip's grandparent folder."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such clip")
    label = safe_label(new_label)
    folder = Path(root) / label if root is not None else p.parent.parent / label
    if folder.resolve() == p.parent.resolve():
        return p
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / p.name
    if dest.exists():
        speaker = p.name.split("_nohash_")[0] if "_nohash_" in p.name else p.stem
        dest = folder / f"{speaker}_nohash_{next_free(folder, speaker)}{p.suffix}"
    try:
        os.replace(p, dest)
    except OSError as e:
        raise DataError(f"{p}: cannot move to {dest}: {e.strerror or e}") from None
    _rewrite_lists(Path(list_dir) if list_dir else None, p, dest, label)
    return dest


def delete_clip(path: str | os.PathLike, *, list_dir: str | os.PathLike | None = None) -> None:
    """Remove the clip and its lines in the lists of `list_dir`."""
    p = Path(path)
    try:
        p.unlink()
    except FileNotFoundError:
        raise DataError(f"{p}: no such clip") from None
    except OSError as e:
        raise DataError(f"{p}: cannot delete: {e.strerror or e}") from None
    _rewrite_lists(Path(list_dir) if list_dir else None, p, None, None)


def label_counts(root: str | os.PathLike) -> dict[str, int]:
    """Clips per word folder of a Speech Commands style folder (folders starting with '_' or '.' skipped)."""
    from core.audio.formats import is_audio_name

    d = Path(root)
    if not d.is_dir():
        return {}
    return {w.name: sum(1 for p in w.iterdir() if is_audio_name(p) and p.is_file())
            for w in sorted(d.iterdir()) if w.is_dir() and not w.name.startswith(("_", "."))}
