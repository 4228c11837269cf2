"""The Dataset panel's jobs (Qt-free: the build runs in a child process): lists, featurized
training/validation/testing datasets, synthetic keywords, each a plain composition of core.data
calls reporting through a job context, with frozen reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.data.augment import AugmentConfig, NoiseBank
from core.data.dataset import DatasetConfig, build_dataset, save_dataset
from core.data.lists import CATEGORIES, SPLITS, ListsConfig, check_output_dir, make_lists, read_list, write_lists
from core.errors import DataError
from core.graph.ir import Graph
from core.outputs import output_set

NOISE_REGIONS = {"training": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0)}


@dataclass(frozen=True)
class ListsReport:
    outdir: str
    categories: tuple[str, ...]
    counts: dict  # split -> {class: files}
    bad_removed: int
    capped: dict


@dataclass(frozen=True)
class BuildReport:
    outdir: str
    files: tuple[str, ...]
    counts: dict  # split -> {class: rows}
    skipped: tuple[tuple[str, str], ...]  # (path, reason)


def lists_job(folders: list[str], outdir: str, cfg: ListsConfig, ctx) -> ListsReport:
    ctx.stage("scanning folders")
    lists = make_lists(folders, cfg)
    ctx.check()
    ctx.stage("writing lists")
    paths = write_lists(lists, check_output_dir(outdir), cfg)
    counts = {s: {c: 0 for c in lists.categories} for s in SPLITS}
    for s in SPLITS:
        for p in getattr(lists, s):
            counts[s][p.parent.name] = counts[s].get(p.parent.name, 0) + 1
    for s in SPLITS:
        ctx.log(f"{paths[s].name}: {len(getattr(lists, s))} files")
    return ListsReport(str(outdir), lists.categories, counts, lists.bad_removed, dict(lists.capped))


def build_job(lists_dir: str, outdir: str, featurizer: Graph, fmeta: dict, dcfg: DatasetConfig,
              aug: AugmentConfig, noise_dir: str | None, jobs: int, ctx) -> BuildReport:
    """training/validation/testing.npz from the lists in `lists_dir` (as `kws dataset --lists`):
    augmentation and background rows go to training only; noise is cut 80/10/10 in time."""
    base, out = Path(lists_dir), check_output_dir(outdir)
    from core.models import load_categories

    cats = load_categories(base / CATEGORIES)
    noise = NoiseBank.load(noise_dir, fmeta["sample_rate"]) if noise_dir else None
    if (aug.noise_fraction > 0 or dcfg.background_rows) and noise is None:
        raise DataError("noise mixing and background rows need a noise folder")
    todo = []
    for split in SPLITS:
        lp = base / f"{split}_list.txt"
        entries = [(e.path, e.label) for e in read_list(lp)] if lp.is_file() else []
        if split == "training" and not entries:
            raise DataError(f"{lp}: missing or empty: make the lists first")
        if entries:
            todo.append((split, lp, entries))
    total = sum(len(e) for _, _, e in todo) + (1 if dcfg.background_rows else 0)
    done_before, files, counts, skipped = 0, [], {}, []
    with output_set(out, [f"{split}.npz" for split in SPLITS]) as staged:  # all old or all new files
        for split, lp, entries in todo:
            train = split == "training"
            lo, hi = NOISE_REGIONS[split]

            def progress(done, _total, offset=done_before, split=split):
                ctx.progress(offset + done, total, split)

            result = build_dataset(
                entries, cats, featurizer, fmeta,
                config=dcfg if train else DatasetConfig(dcfg.window_frames, dcfg.shift_frames, dcfg.seed),
                augment_config=aug if train else AugmentConfig(), noise=noise.region(lo, hi) if noise else None,
                jobs=jobs, list_file=str(lp),
                extra_meta={"list_file": str(lp.absolute()), "noise_dir": noise_dir},
                progress=progress, cancel=ctx.cancel)
            done_before += len(entries) + (1 if train and dcfg.background_rows else 0)
            save_dataset(staged.path(f"{split}.npz"), result.dataset)
            path = staged.final(f"{split}.npz")
            files.append(str(path))
            counts[split] = result.dataset.counts()
            skipped += result.skipped
            ctx.log(f"{path.name}: {len(result.dataset)} rows from {result.dataset.meta['files_used']}/"
                    f"{len(entries)} files" + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    return BuildReport(str(out), tuple(files), counts, tuple(skipped))


def synth_job(words: list[str], outdir: str, per_word: int, jobs: int, ctx, engines: list[str] | None = None):
    """Synthetic keywords; core names each stage (finding engines and voices, synthesizing with ...)."""
    from core.data.synth import SynthConfig, synthesize

    out = check_output_dir(outdir)
    cfg = SynthConfig(per_word=per_word, engines=tuple(engines) if engines else None)
    return synthesize(words, out, cfg, jobs=jobs, progress=ctx.progress, stage=ctx.stage, cancel=ctx.cancel)
