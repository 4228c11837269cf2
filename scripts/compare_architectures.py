"""Which keyword-spotting architecture to use, by measurement on real speakers.

Builds a small dataset from ../shared/data/speech_commands_v0.01_bed_cat_happy with `kws lists`
(Speech Commands' hash rule by speaker; checked against the split column of SOURCES.tsv) and
`kws dataset` (default featurizer: 80 mel, 512-sample hop; augmented copies with noise from
../shared/data/background_noise, plus a background-noise class), then trains each architecture
for the same CPU time on one thread and reports, per architecture: parameters,
multiply-adds per frame, validation accuracy on the validation speakers (none of them in
training; PyTorch, last frame of each row), the compiled classifier's accuracy on the same rows
streamed frame by frame (reset per row), and compiled microseconds per frame (best of 7, beside
the GRU in the same run, since other processes on the machine move absolute numbers).

Equal time: a short calibration on 640 rows measures each model's training CPU seconds per row
(process time of this one-thread process, so other processes on a shared machine do not skew
it); the epoch count is the budget divided by the cost of one epoch (at least 1), with a cosine
schedule over those epochs. Same recipe for all: Adam, lr 2e-3, normalisation, SpecAugment, dropout 0.1.

    nice -n 10 .venv/bin/python scripts/compare_architectures.py --minutes 6
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
WORDS = SHARED / "speech_commands_v0.01_bed_cat_happy"
NOISE = SHARED / "background_noise"
CANDIDATES = {
    "gru-2x128": dict(architecture="gru", num_layers=2, hidden_size=128),
    "bcresnet-16": dict(architecture="bcresnet", bc_channels=16, bc_blocks=1),
    "bcresnet-8x2": dict(architecture="bcresnet", bc_channels=8, bc_blocks=2),
    "tcn-64": dict(architecture="tcn", tcn_channels=64, num_layers=2),
}
RECIPE = dict(optimizer="adam", learning_rate=2e-3, weight_decay=1e-5, scheduler="cosine", lr_min=5e-5,
              normalize=True, spec_augment=True, dropout=0.1, batch_size=128, device="cpu", seed=0)


def kws(*args) -> None:
    cmd = [sys.executable, "-m", "core", *map(str, args)]
    print("$ kws", " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def check_split(lists: Path) -> None:
    """Our lists must be the dataset's own split (SOURCES.tsv), so validation speakers are unseen."""
    with open(WORDS / "SOURCES.tsv", newline="") as f:
        want = {r["path"]: r["split_by_sc_hash_rule"] for r in csv.DictReader(f, delimiter="\t")}
    got = {}
    for split in ("training", "validation", "testing"):
        for ln in (lists / f"{split}_list.txt").read_text().split():
            p = Path(ln) if Path(ln).is_absolute() else (lists / ln).resolve()
            got[f"{p.parent.name}/{p.name}"] = split
    bad = [k for k in want if got.get(k) != want[k]]
    if bad:
        sys.exit(f"kws lists split differs from SOURCES.tsv for {len(bad)} files, e.g. {bad[:3]}")
    speakers = {s: {k.split("/")[1].split("_nohash_")[0] for k, v in got.items() if v == s}
                for s in ("training", "validation")}
    assert not speakers["training"] & speakers["validation"]
    print(f"split = SOURCES.tsv: {sum(v == 'training' for v in got.values())} training, "
          f"{sum(v == 'validation' for v in got.values())} validation clips; "
          f"{len(speakers['validation'])} validation speakers, none in training", flush=True)


def build_data(work: Path, copies: int, jobs: int) -> Path:
    lists, data = work / "lists", work / "data"
    if not (data / "training.npz").exists():
        kws("lists", WORDS, "-o", lists, "--validation-percent", 10, "--testing-percent", 10,
            "--background-class", "background_noise")
        check_split(lists)
        from core.features.featurizer import FeaturizerConfig, build_featurizer
        from core.graph import modelfile

        modelfile.save(build_featurizer(FeaturizerConfig()), work / "featurizer.kwm")
        kws("dataset", "--lists", lists, "--featurizer", work / "featurizer.kwm", "-o", data,
            "--jobs", jobs, "--noise-dir", NOISE, "--noise-fraction", 0.8, "--snr-db", "0,20",
            "--time-shift-ms", 100, "--gain-db=-12,6", "--speed", "0.9,1.1", "--augment-copies", copies,
            "--background-rows", 1500)
    return data


def seconds_per_row(cfg, splits, outdir: Path) -> float:
    """Training CPU seconds per row of `cfg`, timed on 640 rows (one epoch, after a warm-up epoch)."""
    from core.train.config import TrainConfig
    from core.train.trainer import Splits, Trainer

    sub = splits.train.subset(np.arange(min(640, len(splits.train.labels))))
    t = Trainer(TrainConfig.from_dict(cfg.to_dict() | {"epochs": 1}), Splits(sub, None, None), outdir)
    t.run_epoch(0)  # warm-up: first-call allocations
    t0 = time.process_time()
    _, _, rows = t.run_epoch(0)
    return (time.process_time() - t0) / rows


def compiled_us(model, frames: np.ndarray) -> float:
    from core.commands.bench import per_frame_us

    def f(i):
        model._in[:] = frames[i]
        model.step_raw()

    return per_frame_us(f, len(frames))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "compare-architectures")
    ap.add_argument("--minutes", type=float, default=6.0, help="training time (one core) per architecture")
    ap.add_argument("--copies", type=int, default=2, help="augmented copies per training clip")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated candidate names")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from core.compiler.runtime import CompiledModel
    from core.graph import modelfile
    from core.graph.summary import stats
    from core.train.config import TrainConfig
    from core.train.trainer import Splits, Trainer, evaluate, load_splits

    args.work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = build_data(args.work, args.copies, args.jobs)
    s = load_splits(data)
    splits = Splits(s.train, s.val, None)
    print(f"rows: training {len(splits.train.labels)}, validation {len(splits.val.labels)} "
          f"({splits.train.features.shape[1]} frames x {splits.train.features.shape[2]} features)", flush=True)
    rng = np.random.default_rng(0)
    bench_frames = rng.standard_normal((2000, splits.train.features.shape[2])).astype(np.float32)
    results = {}
    for name in args.only.split(","):
        cfg = TrainConfig(**RECIPE, **CANDIDATES[name], epochs=1)
        out = args.work / name
        spr = seconds_per_row(cfg, splits, out / "calibrate")
        epochs = max(1, int(args.minutes * 60 / (spr * len(splits.train.labels))))
        cfg = TrainConfig.from_dict(cfg.to_dict() | {"epochs": epochs})
        print(f"\n== {name}: {spr * 1e3:.2f} CPU ms per training row -> {epochs} epochs in {args.minutes:g} min",
              flush=True)
        tr = Trainer(cfg, splits, out, on_epoch=lambda e, n=epochs: print(
            f"  epoch {e.epoch:2d}/{n} loss {e.loss:.3f} train {e.train_accuracy:.3f} "
            f"val {e.val_accuracy:.3f} {e.seconds:.0f}s", flush=True))
        cpu0 = time.process_time()
        res = tr.fit()
        cpu_s = time.process_time() - cpu0
        res = tr.finish()
        model = tr.model.eval().cpu()
        val_acc = evaluate(model, torch.from_numpy(splits.val.features), torch.from_numpy(splits.val.labels))[0]
        graph = modelfile.load(res.outputs["model"])
        compiled = CompiledModel(graph, "cmp")
        hits = 0
        for x, y in zip(splits.val.features, splits.val.labels):
            compiled.reset()
            hits += int(np.argmax(compiled.run(x)[-1]) == y)
        results[name] = {
            "params": int(sum(p.numel() for p in model.parameters())),
            "macs_per_frame": int(stats(graph)["macs"]),
            "epochs": epochs,
            "train_cpu_s": round(cpu_s, 1),
            "train_wall_s": round(res.training_time_s, 1),
            "val_accuracy": round(val_acc, 4),
            "compiled_val_accuracy": round(hits / len(splits.val.labels), 4),
            "compiled_us_per_frame": round(compiled_us(compiled, bench_frames), 2),
        }
        print(f"  {name}: {json.dumps(results[name])}", flush=True)
    print(f"\n{'architecture':<14}{'params':>9}{'MACs/frame':>12}{'epochs':>8}{'CPU s':>9}{'val acc':>9}"
          f"{'compiled':>10}{'us/frame':>10}")
    for name, r in results.items():
        print(f"{name:<14}{r['params']:>9,}{r['macs_per_frame']:>12,}{r['epochs']:>8}{r['train_cpu_s']:>9.0f}"
              f"{100 * r['val_accuracy']:>8.1f}%{100 * r['compiled_val_accuracy']:>9.1f}%"
              f"{r['compiled_us_per_frame']:>10.1f}")
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"total {(time.perf_counter() - t_start) / 60:.1f} min; results in {args.work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
