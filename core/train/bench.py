"""Benchmarks for the data and training side (`kws bench --data --train`).

- Dataset building and augmentation: core.data.bench.
- Training: rows per second per epoch for the ELL-recipe GRU on CPU, and, on the same featurized
  data, the ELL recipe's accuracy beside our recipe's, with the time each takes to reach a given
  validation accuracy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech_commands_v0.01_sample"


def _recipes():
    from core.train.config import TrainConfig

    ell = TrainConfig()  # 2 x GRU 128, RMSprop 1e-3, wd 1e-5, batch 128
    ours = TrainConfig(optimizer="adam", learning_rate=2e-3, scheduler="cosine", lr_min=5e-5, normalize=True,
                       spec_augment=True, dropout=0.1)
    return [("ELL recipe (RMSprop 1e-3, wd 1e-5)", ell), ("kwsgui recipe (Adam, cosine, norm, SpecAugment)", ours)]


def bench_training(data: str | os.PathLike | None, epochs: int = 10, target: float = 0.8) -> None:
    """Both recipes on the same featurized splits (a folder with training/validation/testing.npz)."""
    import tempfile
    from dataclasses import replace

    import torch

    from core.train.trainer import Trainer, load_splits

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if data is None:
        if not SAMPLE.is_dir():
            print("(training bench skipped: no --train-data and no ../shared/data sample)")
            return
        with tempfile.TemporaryDirectory(prefix="kws-bench-") as tmp:
            _sample_splits(Path(tmp))
            return bench_training(tmp, epochs, target)
    splits = load_splits(data)
    n = len(splits.train.labels)
    print(f"\n== training on {data}: {n} rows x {splits.train.features.shape[1]} frames x "
          f"{splits.train.features.shape[2]} features, {epochs} epochs, CPU, {torch.get_num_threads()} threads")
    print(f"  {'recipe':<50} {'rows/s':>8} {'val acc':>8} {'test acc':>9}  time to val >= {target:.0%}")
    for name, cfg in _recipes():
        cfg = replace(cfg, epochs=epochs, device="cpu")
        with tempfile.TemporaryDirectory() as out:
            tr = Trainer(cfg, splits, out)
            t0 = time.perf_counter()
            reached = None

            def on_epoch(e, t0=t0):
                nonlocal reached
                if reached is None and e.val_accuracy >= target:
                    reached = time.perf_counter() - t0

            tr.on_epoch = on_epoch
            res = tr.fit()
            if splits.test is not None:
                from core.train.trainer import evaluate

                test_x, test_y = torch.from_numpy(splits.test.features), torch.from_numpy(splits.test.labels)
                acc = evaluate(tr.model, test_x, test_y)[0]
            else:
                acc = float("nan")
        rows = np.median([e["rows_per_s"] for e in res.log])
        val = res.log[-1]["val_accuracy"]
        when = f"{reached:.1f} s" if reached is not None else "not reached"
        print(f"  {name:<50} {rows:8.0f} {val:8.3f} {acc:9.3f}  {when}")


def _sample_splits(out: Path) -> None:
    """Featurize the real sample into training/validation/testing.npz in `out`."""
    from core.data.dataset import DatasetConfig, build_dataset, featurizer_info, save_dataset
    from core.data.lists import ListsConfig, make_lists
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    lists = make_lists([SAMPLE], ListsConfig())
    feat = build_featurizer(FeaturizerConfig())
    meta = featurizer_info(feat)
    for split in ("training", "validation", "testing"):
        entries = [(str(p), p.parent.name) for p in getattr(lists, split)]
        res = build_dataset(entries, list(lists.categories), feat, meta, config=DatasetConfig())
        save_dataset(out / f"{split}.npz", res.dataset)
