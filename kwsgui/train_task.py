"""The training job (Qt-free, run in a child process by the Training panel): Trainer with its
callbacks wired to the job context, resume, and a frozen report of the outcome."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from core.quiet import onnx_export_warnings
from core.train.config import TrainConfig


@dataclass(frozen=True)
class TrainReport:
    outdir: str
    interrupted: bool
    epochs: int
    test_accuracy: float | None
    confusion: tuple[tuple[int, ...], ...] | None
    categories: tuple[str, ...]
    outputs: dict  # name -> path (model, categories, onnx, pt, results)
    featurizer_file: str | None  # the featurizer the dataset was made with (None: built-in)
    seconds: float


@dataclass(frozen=True)
class EpochPoint:
    """One finished epoch (core.train.trainer.EpochLog's fields). Its own type so that
    unpickling it in the GUI process never imports torch (core.train.trainer does)."""

    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    lr: float
    seconds: float
    rows_per_s: float


@dataclass(frozen=True)
class Replay:
    """Epochs already in a checkpoint being resumed (redrawn on the curves)."""

    epochs: tuple[EpochPoint, ...]


def train_job(dataset: str, outdir: str, cfg: TrainConfig, resume: bool, ctx) -> TrainReport:
    import torch

    from core.train.trainer import Trainer, checkpoint_config, load_splits

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # leave a core to the GUI
    if resume:
        cfg = TrainConfig.from_dict(checkpoint_config(outdir) | {"epochs": cfg.epochs, "device": cfg.device})
    ctx.stage("loading the dataset")
    splits = load_splits(dataset, seed=cfg.seed)
    n_batches = max(1, len(splits.train.labels) // cfg.batch_size)

    def on_progress(epoch: int, batch: int, batches: int) -> None:
        ctx.progress(epoch * batches + batch, cfg.epochs * batches, f"epoch {epoch + 1}/{cfg.epochs}")

    def on_epoch(e) -> None:
        ctx.partial(EpochPoint(**asdict(e)))

    trainer = Trainer(cfg, splits, outdir, on_epoch=on_epoch, on_progress=on_progress, stop=ctx.cancel)
    if resume:
        trainer.resume()
        ctx.partial(Replay(tuple(EpochPoint(**e) for e in trainer.result.log)))
        ctx.log(f"resuming after epoch {trainer.start_epoch}")
    tr = splits.train
    ctx.log(f"training {cfg.architecture} on {len(tr.labels)} rows x {tr.window_frames} frames x "
            f"{trainer.n_features} features, {len(trainer.categories)} classes, device {trainer.device}")
    ctx.progress(trainer.start_epoch * n_batches, cfg.epochs * n_batches, "training")
    result = trainer.fit()
    ctx.stage("testing and writing the model")
    with onnx_export_warnings():  # finish() exports model.onnx
        result = trainer.finish()
    conf = tuple(tuple(int(v) for v in row) for row in result.confusion) if result.confusion else None
    return TrainReport(str(outdir), result.interrupted, len(result.log), result.test_accuracy, conf,
                       tuple(result.categories), dict(result.outputs), splits.train.featurizer.get("file"),
                       result.training_time_s)
