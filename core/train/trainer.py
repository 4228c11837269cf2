"""Training loop: ELL's recipe and more; checkpoints every epoch, resumes, stops cleanly,
runs under torchrun with DistributedDataParallel (gloo on CPU, nccl on GPU).

Core talks outward through plain callbacks (`on_epoch`, `on_progress`) and a `threading.Event`
for cooperative stopping; the GUI wraps these in Qt signals.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.data.dataset import BACKGROUND_LABELS, Dataset, load_dataset
from core.errors import DataError, KwsError
from core.evaluate.calibrate import default_ignore
from core.evaluate.passrate import best_frames
from core.outputs import atomic_file, clean_stale, output_set, settle
from core.train import arch
from core.train.config import TrainConfig
from core.train.teacher import TeacherSpec, load_teacher
from core.train.warmstart import adopt_architecture, apply_init, load_init


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    lr: float
    seconds: float
    rows_per_s: float


@dataclass
class TrainResult:
    config: dict
    log: list[dict] = field(default_factory=list)
    test_accuracy: float | None = None
    confusion: list[list[int]] | None = None
    categories: list[str] = field(default_factory=list)
    training_time_s: float = 0.0
    interrupted: bool = False
    outputs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset | None
    test: Dataset | None


def load_splits(path: str | os.PathLike, val_fraction: float = 0.1, seed: int = 0) -> Splits:
    """A folder with training.npz (+ validation.npz, testing.npz), or one .npz split 90/10."""
    p = Path(path)
    if p.is_dir():
        settle(p)  # a `kws dataset` killed while moving its files in: finish it first
        train = p / "training.npz"
        if not train.exists():
            raise DataError(f"{p}: no training.npz in this dataset folder (make it with `kws dataset`)")
        opt = {n: (p / f"{n}.npz") for n in ("validation", "testing")}
        return Splits(load_dataset(train), *(load_dataset(f) if f.exists() else None for f in opt.values()))
    ds = load_dataset(p)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(ds.labels))
    n_val = max(1, int(len(idx) * val_fraction))
    return Splits(ds.subset(idx[n_val:]), ds.subset(idx[:n_val]), None)


def checkpoint_config(outdir: str | os.PathLike) -> dict:
    """The training options stored in OUTDIR/checkpoint.pt (to resume with the same run)."""
    path = Path(outdir) / "checkpoint.pt"
    if not path.exists():
        raise KwsError(f"{path}: no checkpoint to resume from")
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True)["config"])
    except Exception as e:  # torch raises many types for a bad file
        raise KwsError(f"{path}: unreadable checkpoint: {e}") from None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KwsError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def lr_at(cfg: TrainConfig, epoch: int, frac: float) -> float:
    """Learning rate at (epoch + frac) epochs; stateless so resuming is exact."""
    t = (epoch + frac) / cfg.epochs
    base, low = cfg.learning_rate, cfg.lr_min
    s = cfg.scheduler
    if s == "step":
        return base * cfg.lr_gamma ** (epoch // cfg.lr_step_size)
    if s == "exponential":
        return base * cfg.lr_gamma**epoch
    if s == "cosine":
        return low + (base - low) * 0.5 * (1 + math.cos(math.pi * t))
    if s == "onecycle":  # warm up 30 %, then cosine down
        if t < 0.3:
            return low + (base - low) * t / 0.3
        return low + (base - low) * 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7))
    if s == "triangle":
        return low + (base - low) * (1 - abs(2 * t - 1))
    return base


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    o, lr, wd = cfg.optimizer, cfg.learning_rate, cfg.weight_decay
    if o == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=cfg.momentum)
    if o == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if o == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=cfg.momentum or 0.9)


def spec_augment(x: torch.Tensor, gen: torch.Generator, max_t: int = 8, max_f: int = 10) -> torch.Tensor:
    """One time mask and one frequency mask per row, vectorised."""
    b, t, f = x.shape
    dev = x.device
    tw = torch.randint(0, max_t + 1, (b, 1), generator=gen).to(dev)
    t0 = (torch.rand(b, 1, generator=gen).to(dev) * (t - tw).clamp(min=1)).long()
    fw = torch.randint(0, max_f + 1, (b, 1), generator=gen).to(dev)
    f0 = (torch.rand(b, 1, generator=gen).to(dev) * (f - fw).clamp(min=1)).long()
    ti, fi = torch.arange(t, device=dev)[None], torch.arange(f, device=dev)[None]
    tmask = (ti >= t0) & (ti < t0 + tw)
    fmask = (fi >= f0) & (fi < f0 + fw)
    return x.masked_fill(tmask[:, :, None] | fmask[:, None, :], 0.0)


def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch: int = 512, frame: str = "last",
             background: int = -1) -> tuple[float, np.ndarray]:
    """Accuracy and predictions: of the last frame, or (frame="peak") `kws eval`'s best-frame
    decision: the most confident frame among those a class other than `background` wins (a row
    that no other class wins in any frame is background)."""
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i : i + batch])
            if frame == "last":
                preds.append(out[:, -1].argmax(-1).cpu())
            else:
                won, _ = best_frames(out.cpu().numpy(), [background] if background >= 0 else [])
                preds.append(torch.from_numpy(won))
    p = torch.cat(preds).to(y.device) if preds else torch.zeros(0, dtype=torch.long)
    acc = float((p == y).float().mean()) if len(y) else 0.0
    return acc, p.cpu().numpy()


def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return world, rank


def close_distributed() -> None:
    """End a torchrun job's process group once every rank is done: the ranks wait for each other
    (rank 0 writes the outputs), then the group's threads stop before the process exits (left
    running, a rank that exited first could abort: "terminate called without an active
    exception"). Nothing without a group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class Trainer:
    def __init__(self, cfg: TrainConfig, splits: Splits, outdir: str | os.PathLike,
                 on_epoch: Callable[[EpochLog], None] | None = None,
                 on_progress: Callable[[int, int, int], None] | None = None,
                 stop: threading.Event | None = None):
        self.cfg, self.splits, self.outdir = cfg, splits, Path(outdir)
        self.on_epoch, self.on_progress = on_epoch, on_progress
        self.stop = stop or threading.Event()
        self.world, self.rank = _dist()
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        tr = splits.train
        self.categories = list(tr.categories)
        self.n_features = tr.features.shape[2]
        init = None
        if cfg.init:  # warm start: the init model's architecture replaces the options given
            layout, init_categories = load_init(cfg.init, cfg.init_categories)
            cfg = self.cfg = adopt_architecture(cfg, layout)
        torch.manual_seed(cfg.seed)
        self.model = arch.build(self.n_features, len(self.categories), cfg)
        if cfg.init:
            init = apply_init(self.model, layout, init_categories, self.categories, cfg.init_outputs)
        elif cfg.normalize:
            flat = tr.features.reshape(-1, self.n_features)
            std = flat.std(axis=0)
            self.model.norm.mean.copy_(torch.from_numpy(flat.mean(axis=0)))
            self.model.norm.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))
        self.model.to(self.device)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.opt = make_optimizer(cfg, self.model.parameters())
        self.x = torch.from_numpy(tr.features).to(self.device)
        self.y = torch.from_numpy(tr.labels).to(self.device)
        self.result = TrainResult(cfg.to_dict(), categories=self.categories)
        if init is not None:
            self.result.config["init_categories_copied"] = init["copied"]
            self.result.config["init_categories_fresh"] = init["fresh"]
        self._init_teacher(tr)
        self.start_epoch = 0

    # ------------------------------------------------------------ distillation
    def _init_teacher(self, tr: Dataset) -> None:
        """Online: a teacher labels every batch. Dataset: the soft targets stored with the rows."""
        cfg = self.cfg
        self.teacher, self.soft, self.covered = None, None, None
        bg = [i for i, c in enumerate(self.categories) if c in BACKGROUND_LABELS]
        self.bg_index = bg[0] if bg else -1
        no_word = default_ignore(self.categories)  # background, silence, unknown: the classes of no word
        self.no_word = torch.tensor([self.categories.index(c) for c in no_word], dtype=torch.long, device=self.device)
        if cfg.quiet_background and self.bg_index < 0:
            raise DataError("--quiet-background: the categories have no background class")
        unknown = [i for i, c in enumerate(self.categories) if c in ("unknown", "_unknown_")]
        self.unknown_index = unknown[0] if unknown else -1
        if cfg.quiet_unknown and self.unknown_index < 0:
            raise DataError("--quiet-unknown: the categories have no unknown class")
        if cfg.teacher_mode == "dataset":
            if tr.soft is None:
                raise DataError("--teacher-mode dataset: the training set has no soft targets; build it with "
                                "`kws dataset --teacher MODEL`, or use --teacher-mode online with --teacher")
            self.soft = torch.from_numpy(tr.soft).to(self.device)
            # classes the teacher spoke for (background rows carry a one-hot background target)
            self.covered = (self.soft > 1e-6).any(dim=0)
        elif cfg.teacher:
            spec = TeacherSpec(cfg.teacher, cfg.teacher_featurizer, cfg.teacher_categories, cfg.teacher_vad)
            self.teacher = load_teacher(spec, self.categories, tr.featurizer, need_same_features=True)
            self.covered = torch.from_numpy(self.teacher.covered).to(self.device)
            self.result.config["teacher_sha256"] = spec.describe()["classifier_sha256"]
        if self.covered is None and len(tr.labels) and int(tr.labels.min()) < 0:
            raise DataError("the training set has rows without a label (-1): they need a teacher "
                            "(--teacher MODEL, or --teacher-mode dataset with soft targets)")
        self.log_delta = None
        if cfg.mix_prob:
            f = tr.featurizer.get("featurizer")
            if isinstance(f, dict) and (not f.get("log", True) or f.get("dct")):
                raise DataError("--mix-prob mixes log filterbank features; this dataset's featurizer "
                                "has no log or applies a DCT")
            self.log_delta = float(f.get("log_delta", 1.0)) if isinstance(f, dict) else 1.0

    def _mix(self, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator):
        """Replace a share of the rows by mixtures of two rows: filterbank magnitudes of uncorrelated
        sounds add in power, so m = sqrt(m_a^2 + (g m_b)^2) with m = exp(feature) - log_delta; the
        second row 0-12 dB quieter. Mixtures have no true label (-1): the teacher labels them."""
        k = int(round(self.cfg.mix_prob * len(xb)))
        if k == 0:
            return xb, yb
        idx = torch.randperm(len(xb), generator=gen)[:k].to(xb.device)
        partner = torch.randperm(len(xb), generator=gen)[:k].to(xb.device)
        gain = (10.0 ** (-torch.rand(k, generator=gen) * 12.0 / 20.0)).to(xb.device)[:, None, None]
        d = self.log_delta
        ma = (xb[idx].exp() - d).clamp_min(0)
        mb = (xb[partner].exp() - d).clamp_min(0) * gain
        xb, yb = xb.clone(), yb.clone()
        xb[idx] = torch.log(torch.sqrt(ma * ma + mb * mb) + d)
        yb[idx] = -1
        return xb, yb

    def _context(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A random-length tail of 1..context_rows shuffled copies of the batch's rows, end to end."""
        n = self.cfg.context_rows
        rows = 1 if n == 1 else int(torch.randint(1, n + 1, (1,), generator=gen))
        ctx = torch.cat([xb[torch.randperm(len(xb), generator=gen).to(xb.device)] for _ in range(rows)], dim=1)
        keep = int(torch.randint(1, ctx.shape[1] + 1, (1,), generator=gen))
        return ctx[:, -keep:]

    def _loss(self, out: torch.Tensor, yb: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        """NLL of the true label; with a teacher, Hinton's distillation term T^2 KL(q_T || p_T)
        mixed in by distill_weight. Rows without a label learn from the teacher alone; the teacher
        is not trusted on rows labelled background (a teacher whose background class rarely wins
        would teach the student to fire on silence) nor on classes it does not know."""
        cfg = self.cfg
        labelled = yb >= 0
        y0 = yb.clamp(min=0)
        if cfg.label_smoothing:
            ce = torch.nn.functional.cross_entropy(out, y0, label_smoothing=cfg.label_smoothing, reduction="none")
        else:
            ce = torch.nn.functional.nll_loss(out, y0, reduction="none")
        if q is None:
            return ce.mean()
        t = cfg.temperature
        log_qt = torch.log_softmax(torch.log(q.clamp_min(1e-8)) / t, dim=-1)
        log_pt = torch.log_softmax(out / t, dim=-1)
        kd = (log_qt.exp() * (log_qt - log_pt)).sum(dim=-1) * (t * t)
        trust = self.covered[y0] & (y0 != self.bg_index)
        a = cfg.distill_weight
        w_kd = torch.where(labelled, a * trust.float(), torch.ones_like(kd))
        w_ce = torch.where(labelled, 1.0 - w_kd, torch.zeros_like(kd))
        return (w_kd * kd + w_ce * ce).mean()

    def _peak(self, seq: torch.Tensor, rows: torch.Tensor, yb: torch.Tensor, q: torch.Tensor | None,
              after_context: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Max-pooling targets (after Sun et al. 2016) for rows of log-probabilities (B, T, C) and
        the rows' features (B, T, F). The word of a row (its label, or the teacher's choice on an
        unlabelled row) is learnt at the frame where the model is surest of it, searched over the
        row's loud part (frames above halfway between its quietest and
        loudest mean log-energy, so never before the word) and hold_frames after it. The quiet
        frames outside that window, and every frame of a background row, learn background: a word
        fades once said instead of lasting into whatever follows. The window's other frames may
        say the word or background but no other class (-log(p_word + p_background)): the end of
        'happy' must not fire 'eight', nor its vowel 'cat'. (After context the row's first
        hold_frames are left alone: the context's word may still be fading.) Returns the word
        frames' outputs and the loss of the other frames."""
        b, t, _ = seq.shape
        word = yb if q is None else torch.where(yb >= 0, yb, q.argmax(-1))
        word = word.clamp(min=0)
        spoken = word != self.bg_index
        lp = seq.gather(2, word[:, None, None].expand(b, t, 1)).squeeze(2)
        frames = torch.arange(t, device=seq.device)[None]
        hold = self.cfg.hold_frames
        with torch.no_grad():
            e = rows.mean(dim=2)
            lo, hi = e.min(dim=1, keepdim=True).values, e.max(dim=1, keepdim=True).values
            loud = e >= (lo + hi) / 2
            first_loud = loud.float().argmax(dim=1)
            last_loud = t - 1 - loud.flip(1).float().argmax(dim=1)
            window = (frames >= first_loud[:, None]) & (frames <= last_loud[:, None] + hold)
            p = torch.where(window, lp.exp(), torch.zeros_like(lp))
            at = torch.where(spoken, p.argmax(dim=1), torch.full_like(first_loud, t - 1))
            end = torch.maximum(at, last_loud)[:, None]
            before = ~spoken[:, None] | (frames < first_loud[:, None] - 1)
            quiet = before | (frames > end + hold)
            # the rest of the word's window may say the word or background, never another class
            other = spoken[:, None] & ~quiet & (frames != at[:, None])
            if after_context:
                quiet &= frames >= hold
                other &= frames >= hold
        out = seq[torch.arange(b, device=seq.device), at]
        if self.bg_index >= 0:
            miss = -seq[:, :, self.bg_index]
            alone = -torch.logaddexp(lp, seq[:, :, self.bg_index])
            other_loss = (alone * other).sum() / other.sum().clamp_min(1)
        else:  # no background class: the word itself fades
            miss = -torch.log1p(-lp.exp().clamp(max=1 - 1e-6))
            quiet &= spoken[:, None]
            other_loss = 0.0
        return out, (miss * quiet).sum() / quiet.sum().clamp_min(1) + other_loss

    def _quiet_background(self, seq: torch.Tensor, yb: torch.Tensor, after_context: bool) -> torch.Tensor | float:
        """Last-frame targets: every frame of a background row learns -log(p_background + p_unknown):
        no word may fire anywhere in noise. (After context the row's first hold_frames are left
        alone: a word of the context may still be held.)"""
        rows = yb == self.bg_index
        if not bool(rows.any()):
            return 0.0
        first = self.cfg.hold_frames if after_context else 0
        return -torch.logsumexp(seq[rows][:, first:][:, :, self.no_word], dim=2).mean()

    def _quiet_unknown(self, seq: torch.Tensor, yb: torch.Tensor, after_context: bool) -> torch.Tensor | float:
        """Last-frame targets: an unknown row's frame where some word is most likely learns
        -log(p_background + p_unknown) (max-pooling over the row: the frame that would fire)."""
        rows = yb == self.unknown_index
        if not bool(rows.any()):
            return 0.0
        first = self.cfg.hold_frames if after_context else 0
        quiet = torch.logsumexp(seq[rows][:, first:][:, :, self.no_word], dim=2)  # (rows, T) log p(no word)
        return -quiet.min(dim=1).values.mean()

    # ------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.outdir / "checkpoint.pt"

    def save_checkpoint(self, epoch: int) -> None:
        if self.rank != 0:
            return
        state = {"config": self.cfg.to_dict(), "epoch": epoch, "model": self.model.state_dict(),
                 "optimizer": self.opt.state_dict(), "log": json.dumps(self.result.log),
                 "categories": self.categories}
        with atomic_file(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def resume(self) -> None:
        if not self.checkpoint_path.exists():
            raise KwsError(f"{self.checkpoint_path}: no checkpoint to resume from")
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except Exception as e:  # torch raises many types for a bad file
            raise KwsError(f"{self.checkpoint_path}: unreadable checkpoint: {e}") from None
        if state["categories"] != self.categories:
            raise KwsError(f"{self.checkpoint_path}: checkpoint categories differ from the dataset's")
        saved = TrainConfig.from_dict(state["config"]).to_dict()
        mine = self.cfg.to_dict()
        differ = [k for k in saved if k in mine and k not in ("epochs", "device") and saved[k] != mine[k]]
        if differ:
            raise KwsError(f"{self.checkpoint_path}: the checkpoint was trained with other options: "
                           + ", ".join(f"{k}={saved[k]!r} (now {mine[k]!r})" for k in differ))
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.result.log = json.loads(state["log"])
        self.start_epoch = int(state["epoch"])

    # ------------------------------------------------------------ loop
    def run_epoch(self, epoch: int) -> tuple[float, float, int]:
        cfg = self.cfg
        self.net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        torch.manual_seed(cfg.seed * 7919 + epoch)  # dropout: reproducible per epoch, so resume is exact
        perm = torch.randperm(len(self.y), generator=gen)
        perm = perm[self.rank :: self.world]
        n_batches = max(1, len(perm) // cfg.batch_size)
        loss_sum, correct, seen, labelled = 0.0, 0, 0, 0
        for b in range(n_batches):
            if self.stop.is_set():
                raise KeyboardInterrupt
            lr = lr_at(cfg, epoch, b / n_batches)
            for g in self.opt.param_groups:
                g["lr"] = lr
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size].to(self.device)
            xb, yb = self.x[idx], self.y[idx]
            n_row = xb.shape[1]
            if cfg.spec_augment:
                xb = spec_augment(xb, gen)
            q = None
            if self.teacher is not None:  # fresh soft targets for the row the student hears
                if cfg.mix_prob:
                    xb, yb = self._mix(xb, yb, gen)
                q = torch.from_numpy(self.teacher.label_rows(xb.detach().cpu().numpy())).to(self.device)
            elif self.soft is not None:
                q = self.soft[idx]
            if cfg.context_prob and float(torch.rand(1, generator=gen)) < cfg.context_prob:
                # unrelated frames first (a random-length tail of up to context_rows other rows,
                # state carried), the target = the row's own (the teacher labelled the row alone)
                xb = torch.cat([self._context(xb, gen), xb], dim=1)
            seq = self.net(xb)
            unknown_loss = 0.0
            if cfg.target_frame == "peak":
                out, quiet_loss = self._peak(seq[:, -n_row:], xb[:, -n_row:], yb, q, xb.shape[1] > n_row)
            else:
                out = seq[:, -1]
                quiet_loss = self._quiet_background(seq[:, -n_row:], yb, xb.shape[1] > n_row) \
                    if cfg.quiet_background else 0.0
                if cfg.quiet_unknown:
                    unknown_loss = self._quiet_unknown(seq[:, -n_row:], yb, xb.shape[1] > n_row)
            loss = self._loss(out, yb, q) + cfg.release_weight * quiet_loss + cfg.quiet_unknown * unknown_loss
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += float(loss.detach()) * len(yb)
            known = yb >= 0
            correct += int((out.argmax(-1) == yb)[known].sum())
            seen += len(yb)
            labelled += int(known.sum())
            if self.on_progress and (b % 10 == 0 or b == n_batches - 1):
                self.on_progress(epoch, b + 1, n_batches)
        return loss_sum / max(seen, 1), correct / max(labelled, 1), seen * self.world

    def fit(self) -> TrainResult:
        cfg = self.cfg
        self.outdir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:  # what killed runs left: temporaries, a half-moved output set
            clean_stale(self.outdir, (*OUTPUT_FILES.values(), "checkpoint.pt"))
        val = self.splits.val
        xv = torch.from_numpy(val.features).to(self.device) if val is not None else None
        yv = torch.from_numpy(val.labels).to(self.device) if val is not None else None
        t_start = time.perf_counter()
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                t0 = time.perf_counter()
                loss, train_acc, rows = self.run_epoch(epoch)
                dt = time.perf_counter() - t0
                val_acc = (evaluate(self.model, xv, yv, frame=cfg.target_frame, background=self.bg_index)[0]
                           if xv is not None else float("nan"))
                log = EpochLog(epoch + 1, loss, train_acc, val_acc, lr_at(cfg, epoch, 1.0), dt, rows / dt)
                self.result.log.append(asdict(log))
                self.save_checkpoint(epoch + 1)
                if self.on_epoch and self.rank == 0:
                    self.on_epoch(log)
        except KeyboardInterrupt:
            self.result.interrupted = True
        self.result.training_time_s = sum(e["seconds"] for e in self.result.log) or time.perf_counter() - t_start
        return self.result

    def finish(self) -> TrainResult:
        """Test accuracy, confusion matrix and every output file (rank 0 only)."""
        if self.rank != 0:
            return self.result
        test = self.splits.test
        if test is not None and len(test.labels):
            acc, pred = evaluate(self.model, torch.from_numpy(test.features).to(self.device),
                                 torch.from_numpy(test.labels).to(self.device), frame=self.cfg.target_frame,
                                 background=self.bg_index)
            n = len(self.categories)
            conf = np.zeros((n, n), dtype=int)
            np.add.at(conf, (test.labels, pred), 1)
            self.result.test_accuracy, self.result.confusion = acc, conf.tolist()
        self.result.outputs = write_outputs(self.model, self.n_features, self.categories,
                                            self.splits.train.featurizer, self.outdir, self.result)
        return self.result


OUTPUT_FILES = {"pt": "model.pt", "onnx": "model.onnx", "model": "model.kwm", "categories": "categories.txt",
                "results": "train_results.json"}


def write_outputs(model, n_features: int, categories: list[str], featurizer_meta: dict, outdir: Path,
                  result: TrainResult) -> dict:
    """All output files as one set (core.outputs): a kill leaves the previous run's set or this one,
    never a mix; checkpoint.pt beside them is left alone."""
    with output_set(outdir, OUTPUT_FILES.values()) as s:
        _write_output_files(model, n_features, categories, featurizer_meta,
                            {k: s.path(v) for k, v in OUTPUT_FILES.items()}, result,
                            {k: str(s.final(v)) for k, v in OUTPUT_FILES.items()})
    return result.outputs


def _write_output_files(model, n_features: int, categories: list[str], featurizer_meta: dict, out: dict,
                        result: TrainResult, final: dict) -> None:
    from core.graph import modelfile
    from core.train.export import export_onnx, to_graph

    model = model.eval().cpu()
    torch.save(model.state_dict(), out["pt"])
    export_onnx(model, n_features, out["onnx"])
    graph = to_graph(model, n_features, out["onnx"])
    fcfg = featurizer_meta.get("featurizer") or {}
    graph.metadata.update({
        "kind": "classifier", "categories": categories, "featurizer": fcfg,
        "sample_rate": featurizer_meta.get("sample_rate", fcfg.get("sample_rate")),
        "hop_length": featurizer_meta.get("hop_length", fcfg.get("hop_length")),
        "training": {"config": result.config, "test_accuracy": result.test_accuracy,
                     "epochs": len(result.log)},
    })
    modelfile.save(graph, out["model"])
    out["categories"].write_text("\n".join(categories) + "\n", encoding="utf-8")
    result.outputs = final
    out["results"].write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
