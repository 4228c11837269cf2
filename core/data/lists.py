"""Training / validation / testing lists from folders of wavs (ELL's make_training_list).

Input: one or more AUDIO_DIRs in Speech Commands layout, `word/<speaker>_nohash_<n>.wav`.
Categories are the sorted word folders of all of them; folders starting with `_` (such as
`_background_noise_`) or `.` are not words.

Splits: a folder's own `testing_list.txt` and `validation_list.txt` (lines `word/file.wav`) are
honoured, and every other file of that folder trains. A folder without them is split by the
Speech Commands rule: the SHA-1 of the speaker id (the file name before `_nohash_`) picks the
split, so one speaker never lands in two splits, and adding files never moves old ones.
Listed files that are absent (a sample of a bigger dataset) are simply not in the output.

List files written (header-free, one wav per line, `/` separators): paths relative to the
folder holding the list, or absolute when no relative path exists. With the lists in AUDIO_DIR
this is ELL's `word/file.wav`; with `-o elsewhere` it is e.g. `../speech/yes/a_nohash_0.wav`.
A wav's label is the name of its parent folder. `read_list` resolves both forms. Beside the lists,
`lists.json` records where every split came from (and marks lists this tool generated, so a
second run re-splits rather than mistaking them for a dataset's own lists).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.audio.formats import is_audio_name
from core.errors import DataError
from core.fsutil import MiB, read_text_bounded, write_text_atomic

TRAINING, VALIDATION, TESTING = "training_list.txt", "validation_list.txt", "testing_list.txt"
CATEGORIES, PROVENANCE = "categories.txt", "lists.json"
SPLITS = ("training", "validation", "testing")
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # Speech Commands' which_set constant
MAX_LIST_BYTES = 64 * MiB  # ~1M lines; Speech Commands' largest list is 2 MiB


@dataclass(frozen=True)
class ListEntry:
    path: Path
    label: str


def speaker_id(name: str) -> str:
    """`abc123_nohash_2.wav` -> `abc123`; a name without `_nohash_` is its own speaker."""
    base = os.path.basename(name)
    return re.sub(r"_nohash_.*$", "", base) if "_nohash_" in base else os.path.splitext(base)[0]


def which_split(name: str, validation_percent: float, testing_percent: float) -> str:
    """Speech Commands' stable hash split by speaker: 'training', 'validation' or 'testing'."""
    digest = hashlib.sha1(speaker_id(name).encode("utf-8")).hexdigest()
    pct = (int(digest, 16) % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if pct < validation_percent:
        return "validation"
    if pct < validation_percent + testing_percent:
        return "testing"
    return "training"


def word_folders(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))


def read_list(path: str | os.PathLike) -> list[ListEntry]:
    """Entries of a list file: lines relative to the list's folder (or absolute); label = parent folder."""
    p = Path(path)
    lines = read_text_bounded(p, "list file", error=DataError, max_bytes=MAX_LIST_BYTES).splitlines()
    out = []
    for ln in lines:
        ln = ln.strip()
        if ln and not ln.startswith("#"):
            wav = Path(ln) if os.path.isabs(ln) else p.parent / ln
            out.append(ListEntry(wav, wav.parent.name))
    return out


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive
        return path.as_posix()


def write_list(path: str | os.PathLike, wavs: Sequence[Path]) -> None:
    p = Path(path)
    base = p.parent.absolute()
    write_text_atomic(p, "".join(_rel(Path(w).absolute(), base) + "\n" for w in wavs))


@dataclass(frozen=True)
class ListsConfig:
    max_files_per_dir: int | None = None  # cap of training files per word (ELL: 5000; None = all)
    seed: int = 0
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    bad_list: str | None = None  # lines `word/file.wav` (relative to each AUDIO_DIR) or absolute
    background_class: str | None = None  # prepended to categories.txt as class 0

    def __post_init__(self):
        if self.max_files_per_dir is not None and self.max_files_per_dir < 1:
            raise ValueError(f"max files per dir must be >= 1, got {self.max_files_per_dir}")
        for name in ("validation_percent", "testing_percent"):
            v = getattr(self, name)
            if not 0.0 <= v < 100.0:
                raise ValueError(f"{name.replace('_', ' ')} must be in [0, 100), got {v}")
        if self.validation_percent + self.testing_percent >= 100.0:
            raise ValueError("validation + testing percent must leave something to train on")


@dataclass(frozen=True)
class Lists:
    categories: tuple[str, ...]
    training: tuple[Path, ...]
    validation: tuple[Path, ...]
    testing: tuple[Path, ...]
    sources: dict = field(default_factory=dict)  # root -> {"split": "dataset lists"|"hash", ...}
    bad_removed: int = 0
    capped: dict = field(default_factory=dict)  # word -> (kept, available)


def _read_bad(path: str) -> tuple[set[str], set[Path]]:
    """Bad-list lines: `word/file.wav` relative to every AUDIO_DIR, or absolute paths."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: bad list not found")
    lines = read_text_bounded(p, "bad list", error=DataError, max_bytes=MAX_LIST_BYTES).splitlines()
    rel, absolute = set(), set()
    for ln in lines:
        ln = ln.strip().replace("\\", "/")
        if not ln or ln.startswith("#"):
            continue
        if os.path.isabs(ln):
            absolute.add(Path(ln).resolve())
        else:
            rel.add(Path(ln).as_posix())
    return rel, absolute


def _dataset_lists(root: Path) -> dict[str, Path] | None:
    """The folder's own validation/testing lists (the .orig copies when we rewrote them)."""
    prov = root / PROVENANCE
    if prov.is_file():
        try:
            if "." in json.loads(prov.read_text(encoding="utf-8")).get("hashed_roots", []):
                return None  # lists this tool wrote after hashing this very folder: split again
        except (OSError, ValueError, AttributeError):
            pass
    found = {}
    for split, name in (("validation", VALIDATION), ("testing", TESTING)):
        orig = root / name.replace(".txt", ".orig.txt")
        found[split] = orig if orig.is_file() else root / name
    have = {k: v.is_file() for k, v in found.items()}
    if not any(have.values()):
        return None
    if not all(have.values()):
        missing = [n for n, ok in zip((VALIDATION, TESTING), have.values()) if not ok]
        raise DataError(f"{root}: has one split list but not {missing[0]}: provide both or neither")
    return found


def make_lists(audio_dirs: Sequence[str | os.PathLike], config: ListsConfig = ListsConfig()) -> Lists:
    roots = [Path(d) for d in audio_dirs]
    for r in roots:
        if not r.is_dir():
            raise DataError(f"{r}: audio folder not found")
    bad_rel, bad_abs = _read_bad(config.bad_list) if config.bad_list else (set(), set())
    by_word: dict[str, dict[str, list[Path]]] = {}
    sources: dict[str, dict] = {}
    bad_removed = 0
    for root in roots:
        words = word_folders(root)
        if not words:
            raise DataError(f"{root}: no word folders (expected AUDIO_DIR/word/*.wav)")
        own = _dataset_lists(root)
        listed: dict[str, set[str]] = {}
        if own:
            for split, lp in own.items():
                lines = read_text_bounded(lp, "list file", error=DataError, max_bytes=MAX_LIST_BYTES).splitlines()
                listed[split] = {ln.strip() for ln in lines if ln.strip()}
        counts = dict.fromkeys(SPLITS, 0)
        for word in words:
            slot = by_word.setdefault(word, {s: [] for s in SPLITS})
            wavs = sorted(p for p in (root / word).iterdir() if is_audio_name(p) and p.is_file())
            for wav in wavs:
                rel = f"{word}/{wav.name}"
                if rel in bad_rel or (bad_abs and wav.resolve() in bad_abs):
                    bad_removed += 1
                    continue
                if own:
                    split = ("testing" if rel in listed["testing"] else
                             "validation" if rel in listed["validation"] else "training")
                else:
                    split = which_split(wav.name, config.validation_percent, config.testing_percent)
                slot[split].append(wav)
                counts[split] += 1
        src = {"split": "dataset lists" if own else "hash", "counts": counts}
        if own:
            src["lists"] = {k: str(v.resolve()) for k, v in own.items()}
        sources[str(root.resolve())] = src
    capped = {}
    if config.max_files_per_dir:
        for word, slot in by_word.items():
            files = slot["training"]
            if len(files) > config.max_files_per_dir:
                rng = np.random.default_rng([config.seed, zlib.crc32(word.encode("utf-8"))])
                keep = np.sort(rng.choice(len(files), config.max_files_per_dir, replace=False))
                slot["training"] = [files[i] for i in keep]
                capped[word] = (config.max_files_per_dir, len(files))
    words = sorted(by_word)
    cats = list(words)
    if config.background_class:
        if config.background_class in cats:
            cats.remove(config.background_class)
        cats.insert(0, config.background_class)

    def gather(split):
        return tuple(p for w in words for p in by_word[w][split])

    return Lists(tuple(cats), gather("training"), gather("validation"), gather("testing"), sources,
                 bad_removed, capped)


def writable(folder: Path) -> bool:
    """Writable, and meant to be: root may write anywhere, but a folder with no write permission
    bits (read-only shared data) counts as read-only for root too."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return os.access(folder, os.W_OK) and bool(mode & 0o222)


def check_output_dir(folder: str | os.PathLike) -> Path:
    """Create `folder` if needed, refusing to write into (or under) a read-only folder."""
    out = Path(folder)
    probe = out
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir() or not writable(probe):
        raise DataError(f"{probe}: not writable (read-only data?); choose another output with -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create the output folder: {e.strerror or e}") from None
    return out


def default_output(audio_dirs: Sequence[str | os.PathLike]) -> Path:
    if len(audio_dirs) != 1:
        raise DataError("several AUDIO_DIRs: say where the lists go with -o OUTDIR")
    root = Path(audio_dirs[0])
    if not writable(root):
        raise DataError(f"{root}: this data folder is not writable (read-only data?); "
                        "write the lists elsewhere with -o OUTDIR")
    return root


def write_lists(lists: Lists, outdir: str | os.PathLike,
                config: ListsConfig | None = None) -> dict[str, Path]:
    """Write the four lists and lists.json into `outdir`. A dataset's own split lists that would
    be overwritten are kept once as `*.orig.txt` (and read from there next time)."""
    out = check_output_dir(outdir)
    own = lists.sources.get(str(out.resolve()), {}).get("lists", {})
    for split, name in (("validation", VALIDATION), ("testing", TESTING)):
        src, target = own.get(split), out / name
        backup = out / name.replace(".txt", ".orig.txt")
        if src and Path(src) == target.resolve() and not backup.exists():
            shutil.copy2(target, backup)
    paths = {"training": out / TRAINING, "validation": out / VALIDATION, "testing": out / TESTING,
             "categories": out / CATEGORIES, "provenance": out / PROVENANCE}
    try:
        for split in SPLITS:
            write_list(paths[split], getattr(lists, split))
        write_text_atomic(paths["categories"], "".join(c + "\n" for c in lists.categories))
        doc = {
            "format": "kwsgui-lists", "version": 1,
            "paths": "relative to this folder (or absolute); label = parent folder name",
            "hashed_roots": [_rel(Path(r), out.resolve()) for r, s in lists.sources.items()
                             if s["split"] == "hash"],
            "sources": lists.sources, "bad_removed": lists.bad_removed,
            "capped": {w: {"kept": k, "available": a} for w, (k, a) in lists.capped.items()},
            "counts": {s: len(getattr(lists, s)) for s in SPLITS},
            "config": None if config is None else {
                "max_files_per_dir": config.max_files_per_dir, "seed": config.seed,
                "validation_percent": config.validation_percent, "testing_percent": config.testing_percent,
                "bad_list": str(Path(config.bad_list).absolute()) if config.bad_list else None,
                "background_class": config.background_class},
        }
        write_text_atomic(paths["provenance"], json.dumps(doc, indent=1) + "\n")
    except OSError as e:
        raise DataError(f"{out}: cannot write the lists: {e.strerror or e}") from None
    return paths
