"""Featurized datasets (ELL's make_dataset): the file format and the builder.

File format (np.savez, no pickle: `np.load(path, allow_pickle=False)` reads it):
    features    float32 (rows, window_frames, n_features)
    labels      int64   (rows,)  indexes into categories
    categories  unicode (n_classes,)
    featurizer  0-d unicode: JSON of the featurizer model's metadata, plus sample_rate,
                hop_length, window_size, n_features, file; "featurizer" holds our
                FeaturizerConfig dict when the featurizer is ours
    meta        0-d unicode: JSON with format/version, window_frames, shift_frames, list_file,
                counts per class, skipped files, augmentation settings, noise, background, seed
    soft        optional float32 (rows, n_classes): a teacher's probabilities per row (knowledge
                distillation, `kws dataset --teacher`); with it, a label of -1 means "no true
                label, learn from the teacher alone" (mixtures, unlabelled recordings)

Rows, per clip (ELL's rule): featurize the clip (one frame per whole hop), cut windows of
`window_frames` every `shift_frames`; when the frames left over number more than a quarter
window, or the clip gave no row at all, pad them to a full row. Padding continues the clip's
mixed-in noise through the featurizer when it has some, otherwise it is ELL's last frame plus
Gaussian noise of half that frame's standard deviation. Rows with non-finite values are dropped.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import multiprocessing as mp
import os
import signal
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.data.augment import AugmentConfig, NoiseBank, RoomBank, SpeechPool, augment_copy, parse_range
from core.errors import DataError, KwsError
from core.graph.ir import Graph
from core.outputs import atomic_file, settle
from core.progress import check_cancel
from core.train.teacher import TeacherSpec

FORMAT, VERSION = "kwsgui-dataset", 1
KEYS = ("features", "labels", "categories", "featurizer", "meta")
BACKGROUND_LABELS = ("background_noise", "_background_noise_", "background", "silence", "_silence_")


@dataclass(frozen=True, eq=False)
class Dataset:
    features: np.ndarray  # (rows, window_frames, n_features) float32
    labels: np.ndarray  # (rows,) int64
    categories: tuple[str, ...]
    featurizer: dict
    meta: dict
    soft: np.ndarray | None = None  # (rows, n_classes) float32 teacher probabilities, or None

    def __post_init__(self):
        f, y, q = self.features, self.labels, self.soft
        if f.ndim != 3 or f.dtype != np.float32:
            raise ValueError(f"features must be float32 (rows, frames, features), got {f.dtype} {f.shape}")
        if y.ndim != 1 or y.dtype != np.int64 or len(y) != len(f):
            raise ValueError(f"labels must be int64 ({len(f)},), got {y.dtype} {y.shape}")
        if not self.categories:
            raise ValueError("a dataset needs at least one category")
        # -1: no true label; a teacher labels the row (its stored soft targets, or online: the
        # trainer refuses such rows without a teacher)
        if len(y) and (y.min() < -1 or y.max() >= len(self.categories)):
            raise ValueError(f"labels must index the {len(self.categories)} categories (or be -1: no label), "
                             f"got {y.min()}..{y.max()}")
        if q is not None:
            if q.dtype != np.float32 or q.shape != (len(y), len(self.categories)):
                raise ValueError(f"soft targets must be float32 ({len(y)}, {len(self.categories)}), "
                                 f"got {q.dtype} {q.shape}")
            if len(q) and (not np.isfinite(q).all() or q.min() < 0 or np.abs(q.sum(1) - 1).max() > 1e-3):
                raise ValueError("soft targets must be finite probabilities summing to 1 per row")

    @property
    def window_frames(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[2])

    @property
    def sample_rate(self) -> int | None:
        return self.featurizer.get("sample_rate")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        n = np.bincount(self.labels[self.labels >= 0], minlength=len(self.categories))
        return {c: int(k) for c, k in zip(self.categories, n)}

    def subset(self, index) -> Dataset:
        idx = np.asarray(index)
        return replace(self, features=self.features[idx], labels=self.labels[idx],
                       soft=None if self.soft is None else self.soft[idx])


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, tuple)):
        return str(o) if isinstance(o, Path) else list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_dataset(path: str | os.PathLike, ds: Dataset) -> Path:
    """Write atomically and fsynced: a crash or Ctrl-C leaves no partial file (an old one stays intact).
    Several splits that belong together go through core.outputs.output_set (see `kws dataset --lists`)."""
    p = Path(path)
    arrays = {
        "features": np.ascontiguousarray(ds.features, dtype=np.float32),
        "labels": np.ascontiguousarray(ds.labels, dtype=np.int64),
        "categories": np.array(list(ds.categories), dtype=str),
        "featurizer": np.array(json.dumps(ds.featurizer, default=_json_default)),
        "meta": np.array(json.dumps(ds.meta, default=_json_default)),
    }
    if ds.soft is not None:
        arrays["soft"] = np.ascontiguousarray(ds.soft, dtype=np.float32)
    try:
        with atomic_file(p) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError as e:
        raise DataError(f"{p}: cannot write dataset: {e.strerror or e}") from None
    return p


def load_dataset(path: str | os.PathLike) -> Dataset:
    p = Path(path)
    settle(p.parent)  # a dataset set whose writer was killed while moving it in: finish it first
    if not p.is_file():
        raise DataError(f"{p}: no such dataset file")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataError(f"{p}: not a kwsgui dataset (missing {', '.join(missing)}); "
                                "make one with `kws dataset`")
            arrays = {k: z[k] for k in KEYS}
            soft = z["soft"] if "soft" in z.files else None
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{p}: holds pickled objects, which are never loaded") from None
        raise DataError(f"{p}: not a readable dataset ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{p}: not a readable dataset ({e or type(e).__name__})") from None
    try:
        feats, labels = arrays["features"], arrays["labels"]
        if not np.issubdtype(feats.dtype, np.floating) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"features must be float and labels integer, "
                             f"got {feats.dtype} and {labels.dtype}")
        cats = arrays["categories"]
        if cats.ndim != 1 or cats.dtype.kind != "U":
            raise ValueError(f"categories must be a 1-d unicode array, got {cats.dtype} {cats.shape}")
        docs = {}
        for k in ("featurizer", "meta"):
            a = arrays[k]
            if a.ndim != 0 or a.dtype.kind != "U":
                raise ValueError(f"{k} must be a 0-d unicode JSON string, got {a.dtype} {a.shape}")
            docs[k] = json.loads(str(a))
            if not isinstance(docs[k], dict):
                raise ValueError(f"{k} JSON must be an object")
        if soft is not None and not np.issubdtype(soft.dtype, np.floating):
            raise ValueError(f"soft targets must be float, got {soft.dtype}")
        return Dataset(feats.astype(np.float32, copy=False), labels.astype(np.int64, copy=False),
                       tuple(str(c) for c in cats), docs["featurizer"], docs["meta"],
                       None if soft is None else soft.astype(np.float32, copy=False))
    except ValueError as e:  # includes json.JSONDecodeError
        raise DataError(f"{p}: malformed dataset: {e}") from None


# ---------------------------------------------------------------- featurizer description

def _ell_sample_rate(path: Path) -> int | None:
    """ELL featurizers keep "sample_rate" in a node's metadata property bag."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    stack = [doc]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if o.get("k") == "sample_rate" and isinstance(o.get("v"), dict):
                try:
                    return int(float(o["v"].get("value")))
                except (TypeError, ValueError):
                    return None
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return None


def featurizer_info(graph: Graph, path: str | os.PathLike | None = None,
                    sample_rate: int | None = None) -> dict:
    """The featurizer's metadata as stored in a dataset (JSON-able), with the rate it needs."""
    meta = json.loads(json.dumps(dict(graph.metadata), default=_json_default))
    cfg = meta.get("featurizer") if isinstance(meta.get("featurizer"), dict) else {}
    sr = sample_rate or meta.get("sample_rate") or cfg.get("sample_rate")
    if not sr and path is not None and Path(path).suffix.lower() == ".ell":
        sr = _ell_sample_rate(Path(path))
    if not sr:
        raise DataError(f"{path or 'featurizer'}: the featurizer does not state its sample rate; "
                        "pass --sample-rate")
    info = dict(meta, sample_rate=int(sr), hop_length=int(graph.input_size),
                n_features=int(graph.output_size))
    fb = graph.by_op("frame_buffer")
    if fb:
        info.setdefault("window_size", int(fb[0].attrs["window_size"]))
    filt = graph.by_op("filterbank")
    if filt:
        info.setdefault("n_filters", int(filt[0].params["weights"].shape[0]))
    if path is not None:
        info["file"] = str(Path(path).absolute())
    return info


# ---------------------------------------------------------------- rows of one clip

def plan_rows(n_frames: int, window_frames: int, shift_frames: int) -> tuple[list[int], int]:
    """Start frames of the full rows, and how many pad frames complete a trailing row (0: none).

    The trailing row starts where the next full row would: len(starts) * shift_frames."""
    w, s = window_frames, shift_frames
    starts = list(range(0, n_frames - w + 1, s)) if n_frames >= w else []
    left = n_frames - len(starts) * s
    pad = w - left if 0 <= left < w and (left > w / 4 or not starts) else 0
    return starts, pad


@dataclass(frozen=True, eq=False)
class _Context:
    graph: Graph
    sample_rate: int
    hop: int
    window_frames: int
    shift_frames: int
    augment: AugmentConfig
    noise: NoiseBank | None
    seed: int
    pool: SpeechPool | None = None  # babble: the clips of this split
    rooms: RoomBank | None = None  # reverb: impulse responses simulated once per seed
    teacher: TeacherSpec | None = None  # soft targets per row (loaded once per process)
    categories: tuple[str, ...] = ()
    featurizer_meta: dict | None = None
    quiet: tuple[int, ...] = ()  # sorted indices of background-labelled clips: no babble in or from them


_TEACHERS: dict = {}


def _teacher(ctx: _Context):
    """The context's teacher, loaded (and compiled) once per process."""
    from core.train.teacher import load_teacher

    key = (ctx.teacher, ctx.categories)
    if key not in _TEACHERS:
        _TEACHERS.clear()
        _TEACHERS[key] = load_teacher(ctx.teacher, list(ctx.categories), ctx.featurizer_meta)
    return _TEACHERS[key]


def _clip_rows(ctx: _Context, x: np.ndarray, rng: np.random.Generator,
               augmented: bool, index: int | None = None) -> tuple[np.ndarray, bool, np.ndarray | None]:
    from core.features.featurizer import featurize

    w, s, hop = ctx.window_frames, ctx.shift_frames, ctx.hop
    tail, noisy = None, False
    if augmented:
        cfg, own = ctx.augment, index
        if index is not None and ctx.quiet:
            k = bisect.bisect_left(ctx.quiet, index)
            if k < len(ctx.quiet) and ctx.quiet[k] == index:  # a background recording: no words mixed in
                cfg, own = replace(cfg, babble_fraction=0.0), None
            else:
                own = index - k  # its place in the pool, which holds no background recordings
        a = augment_copy(x, rng, cfg, ctx.noise, ctx.pool, sample_rate=ctx.sample_rate, rooms=ctx.rooms,
                         tail=w * hop, exclude=own)
        x, tail, noisy = a.samples, a.noise_tail, a.snr_db is not None
    n = len(x) // hop
    if n == 0:
        raise DataError(f"too short: {len(x)} samples, less than one {hop}-sample hop")
    starts, pad = plan_rows(n, w, s)
    if pad and tail is not None:  # continue the mixed-in noise through the featurizer
        frames = featurize(ctx.graph, np.concatenate([x[: n * hop], tail[: pad * hop]]))
    else:
        frames = featurize(ctx.graph, x)
        if pad:
            last = frames[-1].astype(np.float64)
            extra = last + rng.normal(0.0, last.std() / 2, size=(pad, len(last)))
            frames = np.concatenate([frames, extra.astype(np.float32)])
    rows = [frames[i: i + w] for i in starts]
    if pad:
        rows.append(frames[len(starts) * s: len(starts) * s + w])
    rows = np.stack(rows).astype(np.float32, copy=False)
    soft = None
    if ctx.teacher is not None:
        teacher = _teacher(ctx)
        if teacher.featurizer is None:  # the teacher reads our features
            soft = teacher.label_rows(rows)
        else:  # its own featurizer hears the same (augmented) audio up to each row's end
            ends = [(i + w) * hop for i in starts] + ([(len(starts) * s + w) * hop] if pad else [])
            audio = x if tail is None else np.concatenate([x[: n * hop], tail])
            audio = np.concatenate([audio, np.zeros(max(0, ends[-1] - len(audio)), np.float32)])
            seconds = w * hop / ctx.sample_rate
            t_hop = teacher.featurizer.input_size / (teacher.featurizer.metadata.get("sample_rate") or ctx.sample_rate)
            soft = teacher.label_audio(audio, ctx.sample_rate, ends, max(1, int(round(seconds / t_hop))))
    return rows, noisy, soft


def _file_rows(ctx: _Context, index: int, path: str) -> tuple[np.ndarray, dict]:
    from core.audio.wav import read_wav

    x, _ = read_wav(path, ctx.sample_rate)
    rng = np.random.default_rng([ctx.seed, index])
    aug = ctx.augment
    out, soft, noisy = [], [], 0
    for copy in range(1 + aug.copies):
        r, nz, q = _clip_rows(ctx, x, rng, aug.active and (aug.copies == 0 or copy > 0), index)
        out.append(r)
        soft.append(q)
        noisy += nz
    rows = np.concatenate(out)
    ok = np.isfinite(rows).all(axis=(1, 2))
    info = {"noisy": noisy, "dropped": int((~ok).sum())}
    if ctx.teacher is not None:
        info["soft"] = np.concatenate(soft)[ok]
    return rows[ok], info


_CTX: _Context | None = None


def _one_blas_thread():
    """Limit BLAS to one thread: the small featurizer matmuls only lose time to thread hand-offs
    (10x slower on a busy 2-core machine), and the worker processes are the parallelism."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: present wherever scikit-learn / librosa are
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _init_worker(ctx: _Context | None, in_pool: bool = True) -> None:
    global _CTX
    _CTX = ctx
    if in_pool:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
        _one_blas_thread()


def _work(task: tuple[int, str]):
    index, path = task
    try:
        rows, info = _file_rows(_CTX, index, path)
        return index, rows, info, None
    except KwsError as e:
        msg = str(e)
        return index, None, None, msg if msg.startswith(path) else f"{path}: {msg}"
    except Exception as e:  # a bad file never ends the run; it is reported
        return index, None, None, f"{path}: {type(e).__name__}: {e}"


# ---------------------------------------------------------------- the builder

@dataclass(frozen=True)
class DatasetConfig:
    window_frames: int = 40
    shift_frames: int = 40
    seed: int = 0
    background_rows: int = 0
    background_label: str | None = None  # None: the first of BACKGROUND_LABELS in the categories
    background_gain_db: tuple[float, float] = (-20.0, 0.0)

    def __post_init__(self):
        for name in ("window_frames", "shift_frames"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be a positive integer, got {v!r}")
        if self.background_rows < 0:
            raise ValueError(f"background rows must be >= 0, got {self.background_rows}")
        parse_range(self.background_gain_db, "background gain dB")


@dataclass(frozen=True)
class BuildResult:
    dataset: Dataset
    skipped: tuple[tuple[str, str], ...]  # (path, reason)


def background_index(categories: Sequence[str], label: str | None) -> int:
    if label is not None:
        if label not in categories:
            raise DataError(f"background label {label!r} is not one of the categories")
        return list(categories).index(label)
    for name in BACKGROUND_LABELS:
        if name in categories:
            return list(categories).index(name)
    raise DataError("--background-rows needs a background class in the categories (one of "
                    f"{', '.join(BACKGROUND_LABELS)}; `kws lists --background-class NAME` adds one) "
                    "or --background-label NAME")


def _background_rows(ctx: _Context, n: int, gain_db: tuple[float, float]) -> np.ndarray:
    from core.features.featurizer import featurize

    rng = np.random.default_rng([ctx.seed, 0xB6])
    length = ctx.window_frames * ctx.hop
    rows = []
    for _ in range(n):
        g = 10.0 ** (rng.uniform(*gain_db) / 20.0)
        seg = np.clip(ctx.noise.segment(rng, length) * g, -1.0, 1.0).astype(np.float32)
        rows.append(featurize(ctx.graph, seg)[: ctx.window_frames])
    return np.stack(rows) if rows else np.zeros((0, ctx.window_frames, ctx.graph.output_size), np.float32)


def _pool_context():
    """fork is fastest, but only safe from a single-threaded process (the CLI); a GUI worker
    thread gets forkserver (or spawn), whose workers receive the context pickled."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def build_dataset(entries: Sequence[tuple[str | os.PathLike, str]], categories: Sequence[str],
                  featurizer: Graph, featurizer_meta: dict, *, config: DatasetConfig | None = None,
                  augment_config: AugmentConfig | None = None, noise: NoiseBank | None = None,
                  jobs: int = 1, list_file: str | None = None, extra_meta: dict | None = None,
                  progress: Callable[[int, int], None] | None = None, cancel=None,
                  teacher: TeacherSpec | None = None) -> BuildResult:
    """Featurize (path, label) clips into rows. Unreadable files are skipped and reported.
    With a `teacher`, every row also gets the teacher's probabilities as soft targets.

    `progress(done, total)` is called as files finish; `cancel` (threading.Event) stops the
    work with `Cancelled`. Same seed -> same dataset, whatever `jobs` is."""
    cats = list(categories)
    unknown = sorted({lab for _, lab in entries if lab not in cats})
    if unknown:
        raise DataError(f"{list_file or 'list'}: labels not in the categories: {', '.join(unknown[:8])}"
                        + (f" (+{len(unknown) - 8} more)" if len(unknown) > 8 else ""))
    config = config or DatasetConfig()
    aug = augment_config or AugmentConfig()
    if (aug.noise_fraction > 0 or config.background_rows) and noise is None:
        raise DataError("noise mixing and background rows need noise recordings (--noise-dir D)")
    bg_index = background_index(cats, config.background_label) if config.background_rows else None
    sr = int(featurizer_meta["sample_rate"])
    # babble comes from the speech of this split, never from (or into) background recordings
    quiet = tuple(i for i, (_, lab) in enumerate(entries) if lab in BACKGROUND_LABELS)
    pool = SpeechPool(tuple(str(p) for i, (p, _) in enumerate(entries) if i not in quiet), sr) \
        if aug.babble_fraction > 0 else None
    rooms = RoomBank.simulate(aug, sr, int(config.seed)) if aug.reverb_fraction > 0 else None
    ctx = _Context(featurizer, sr, int(featurizer.input_size), config.window_frames, config.shift_frames, aug,
                   noise, int(config.seed), pool, rooms, teacher, tuple(cats), dict(featurizer_meta), quiet)
    if teacher is not None:
        _teacher(ctx)  # a bad teacher fails here, once, not in every file
    tasks = [(i, str(p)) for i, (p, _) in enumerate(entries)]
    total = len(tasks) + (1 if config.background_rows else 0)
    results: dict[int, tuple] = {}
    done = 0
    if progress:
        progress(0, total)

    def collect(item):
        nonlocal done
        results[item[0]] = item
        done += 1
        if progress:
            progress(done, total)
        check_cancel(cancel)

    if jobs <= 1 or len(tasks) < 2:
        _init_worker(ctx, in_pool=False)
        try:
            with _one_blas_thread():
                for t in tasks:
                    check_cancel(cancel)
                    collect(_work(t))
        finally:
            _init_worker(None, in_pool=False)
    else:
        chunk = max(1, min(32, len(tasks) // (jobs * 8)))
        with _pool_context().Pool(jobs, initializer=_init_worker, initargs=(ctx,)) as pool:
            try:
                for item in pool.imap_unordered(_work, tasks, chunksize=chunk):
                    collect(item)
            except BaseException:
                pool.terminate()
                raise
    feats, labels, softs, skipped = [], [], [], []
    noisy = dropped = 0
    for i, (path, label) in enumerate(entries):
        _, rows, info, err = results[i]
        if err is not None:
            skipped.append((str(path), err))
            continue
        feats.append(rows)
        labels.append(np.full(len(rows), cats.index(label), np.int64))
        if teacher is not None:
            softs.append(info["soft"])
        noisy += info["noisy"]
        dropped += info["dropped"]
    if config.background_rows:
        check_cancel(cancel)
        bg = _background_rows(ctx, config.background_rows, parse_range(config.background_gain_db, "gain"))
        feats.append(bg)
        labels.append(np.full(len(bg), bg_index, np.int64))
        if teacher is not None:  # background is known to be background: no teacher opinion needed
            softs.append(np.eye(len(cats), dtype=np.float32)[np.full(len(bg), bg_index)])
        if progress:
            progress(total, total)
    n_feat = int(featurizer.output_size)
    x = np.concatenate(feats) if feats else np.zeros((0, config.window_frames, n_feat), np.float32)
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if len(y) == 0:
        first = f" (first: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{list_file or 'list'}: no rows: all {len(entries)} files were skipped{first}")
    meta = {
        "format": FORMAT, "version": VERSION, "window_frames": config.window_frames,
        "shift_frames": config.shift_frames, "list_file": list_file, "seed": config.seed,
        "files": len(entries), "files_used": len(entries) - len(skipped), "rows": int(len(y)),
        "counts": dict(zip(cats, np.bincount(y, minlength=len(cats)).tolist())),
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
        "augment": aug.to_dict(), "noisy_copies": noisy, "dropped_nonfinite_rows": dropped,
        "noise": {"files": list(noise.files)} if noise is not None else None,
        "reverb": rooms.summary() if rooms is not None else None,
        "background": {"rows": config.background_rows, "label": cats[bg_index],
                       "gain_db": list(config.background_gain_db)} if bg_index is not None else None,
    }
    if teacher is not None:
        meta["teacher"] = teacher.describe()
    meta.update(extra_meta or {})
    soft = None
    if teacher is not None:
        soft = np.concatenate(softs) if softs else np.zeros((0, len(cats)), np.float32)
    ds = Dataset(x, y, tuple(cats), dict(featurizer_meta), meta, soft)
    return BuildResult(ds, tuple(skipped))
