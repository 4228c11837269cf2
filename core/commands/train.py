"""Train a keyword spotter (ELL's train_classifier) on a featurized dataset. Defaults are ELL's
recipe: 2 x GRU 128, RMSprop lr 1e-3, weight decay 1e-5, 30 epochs, batch 128. Writes
model.kwm (our graph, softmax output, categories and featurizer config inside), model.pt,
model.onnx, train_results.json and a checkpoint every epoch (--resume continues; Ctrl-C saves
and exits). Runs under `torchrun --nproc-per-node N` with DistributedDataParallel."""

from __future__ import annotations

import sys

from core.quiet import onnx_export_warnings
from core.train.config import (
    ARCHITECTURES,
    GATE_ACTIVATIONS,
    OPTIMIZERS,
    SCHEDULERS,
    TARGET_FRAMES,
    TEACHER_MODES,
    TrainConfig,
)


def add_arguments(p):
    d = TrainConfig()
    p.add_argument("--dataset", "-d", required=True,
                   help="folder with training.npz (+ validation.npz, testing.npz), or one .npz (split 90/10)")
    p.add_argument("-o", "--output", "--outdir", dest="outdir", required=True, metavar="OUTDIR",
                   help="output folder (model.kwm, model.onnx, model.pt, checkpoint.pt, train_results.json)")
    a = p.add_argument_group("architecture")
    a.add_argument("--architecture", "-a", choices=ARCHITECTURES, default=d.architecture,
                   help="recurrent (gru, lstm) or convolutional network, all streaming frame by frame")
    a.add_argument("--num-layers", type=int, default=d.num_layers, help="stacked recurrent layers")
    a.add_argument("--hidden-size", "--hidden-units", type=int, default=d.hidden_size, dest="hidden_size",
                   help="units per recurrent layer")
    a.add_argument("--tcn-channels", type=int, default=d.tcn_channels, help="channels per convolution (tcn)")
    a.add_argument("--tcn-kernel", type=int, default=d.tcn_kernel, help="kernel size in frames (tcn)")
    a.add_argument("--bc-channels", type=int, default=d.bc_channels,
                   help="base width; the stages use 1, 1.5, 2 and 2.5 times it (bcresnet)")
    a.add_argument("--bc-blocks", type=int, default=d.bc_blocks, help="residual blocks per stage (bcresnet)")
    a.add_argument("--dropout", type=float, default=d.dropout, help="dropout between layers while training")
    a.add_argument("--gate-activation", choices=GATE_ACTIVATIONS, default=d.gate_activation,
                   help="GRU gates: PyTorch's sigmoid or ELL's hard sigmoid")
    a.add_argument("--init", default=d.init, metavar="MODEL",
                   help="start from a trained GRU/LSTM classifier (.kwm/.ell/.onnx): its layers replace the "
                        "architecture options, its outputs are matched to the categories by name (fine-tuning)")
    a.add_argument("--init-layers-only", dest="init_outputs", action="store_false",
                   help="take only the --init model's recurrent layers; a new output layer")
    a.add_argument("--init-categories", default=d.init_categories, metavar="FILE",
                   help="the --init model's categories, when its file does not carry them")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training rows")
    o.add_argument("--batch-size", type=int, default=d.batch_size, help="rows per step")
    o.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="ELL uses rmsprop")
    o.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate, dest="learning_rate",
                   help="initial learning rate")
    o.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 penalty on the weights")
    o.add_argument("--momentum", type=float, default=d.momentum, help="momentum (sgd and rmsprop)")
    o.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler,
                   help="learning-rate schedule over the epochs")
    o.add_argument("--lr-step-size", type=int, default=d.lr_step_size,
                   help="step scheduler: epochs between decays")
    o.add_argument("--lr-gamma", type=float, default=d.lr_gamma, help="step scheduler: decay factor")
    o.add_argument("--lr-min", type=float, default=d.lr_min, help="cosine scheduler: final learning rate")
    p.add_argument("--normalize", action="store_true", help="bake per-feature mean/std into the model")
    p.add_argument("--spec-augment", action="store_true", help="time and frequency masking while training")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="share of each target spread over the other classes")
    p.add_argument("--context-prob", type=float, default=d.context_prob,
                   help="share of batches trained after unrelated context, for continuous streams")
    p.add_argument("--context-rows", type=int, default=d.context_rows,
                   help="the context is a random-length tail of up to this many other rows")
    p.add_argument("--target-frame", choices=TARGET_FRAMES, default=d.target_frame,
                   help="last: a row's label at its last frame (ELL; a word lasts into what follows); "
                        "peak: at the frame the model is surest of the word, quiet frames learn background")
    p.add_argument("--hold-frames", type=int, default=d.hold_frames,
                   help="peak: frames a word may last after it is said, before it must fade")
    p.add_argument("--release-weight", type=float, default=d.release_weight,
                   help="weight of the quiet frames' background loss (peak; --quiet-background)")
    p.add_argument("--quiet-background", action="store_true",
                   help="last: every frame of a background row learns 'no word', not only the last")
    p.add_argument("--quiet-unknown", type=float, default=d.quiet_unknown, metavar="W",
                   help="last: an unknown row's likeliest frame for a word learns 'no word' too (max-pooling), "
                        "with weight W (0: off)")
    t = p.add_argument_group("distillation (teacher-student)")
    t.add_argument("--teacher", default=d.teacher, metavar="MODEL",
                   help="a trained model (.ell, .onnx, .kwm) whose probabilities the student learns from")
    t.add_argument("--teacher-featurizer", default=d.teacher_featurizer, metavar="F",
                   help="the teacher's own featurizer, when its features differ from the dataset's "
                        "(then label the dataset: kws dataset --teacher, and --teacher-mode dataset)")
    t.add_argument("--teacher-categories", default=d.teacher_categories, metavar="FILE",
                   help="the teacher's categories, when its model file does not carry them (matched by name)")
    t.add_argument("--teacher-vad", action="store_true", help="keep the teacher's VAD while it labels rows")
    t.add_argument("--teacher-mode", choices=TEACHER_MODES, default=d.teacher_mode,
                   help="online: label every batch as trained (fresh views); dataset: the dataset's stored "
                        "soft targets")
    t.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="share of the teacher's term where a row also has a true label (1: teacher only)")
    t.add_argument("--temperature", type=float, default=d.temperature, help="softens teacher and student")
    t.add_argument("--mix-prob", type=float, default=d.mix_prob,
                   help="share of each batch replaced by two-row mixtures labelled by the teacher alone")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (weights, batches, augmentation)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTDIR/checkpoint.pt with its options; only --epochs and --device apply")


def main(args) -> int:
    from core.train.trainer import Trainer, checkpoint_config, close_distributed, load_splits

    names = TrainConfig.__dataclass_fields__
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    if args.resume:
        cfg = TrainConfig.from_dict(checkpoint_config(args.outdir) | {"epochs": args.epochs, "device": args.device})
    splits = load_splits(args.dataset, seed=cfg.seed)

    def on_epoch(e):
        print(f"epoch {e.epoch:3d}/{cfg.epochs}  loss {e.loss:.4f}  train {e.train_accuracy:.3f}  "
              f"val {e.val_accuracy:.3f}  lr {e.lr:.2e}  {e.seconds:.1f}s  {e.rows_per_s:.0f} rows/s", flush=True)

    trainer = Trainer(cfg, splits, args.outdir, on_epoch=on_epoch)
    if args.resume:
        trainer.resume()
        print(f"resuming after epoch {trainer.start_epoch}", flush=True)
    if trainer.rank == 0:
        start = f" from {cfg.init}" if cfg.init else ""
        print(f"training {trainer.cfg.architecture}{start} on {len(splits.train.labels)} rows x "
              f"{splits.train.features.shape[1]} "
              f"frames x {trainer.n_features} features, {len(trainer.categories)} classes, device {trainer.device}",
              flush=True)
    result = trainer.fit()
    if result.interrupted:
        print("interrupted: the last finished epoch is saved; continue with --resume", file=sys.stderr)
    with onnx_export_warnings():  # finish() exports model.onnx
        result = trainer.finish()
    close_distributed()
    if trainer.rank == 0:
        if result.test_accuracy is not None:
            print(f"Testing accuracy = {100 * result.test_accuracy:.3f} %")
        for k, v in result.outputs.items():
            print(f"wrote {k}: {v}")
    return 130 if result.interrupted else 0
