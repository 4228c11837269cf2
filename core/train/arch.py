"""Keyword-spotting architectures in PyTorch, all streamable frame by frame.

Input (batch, frames, features); output log-probabilities (batch, frames, classes) for every
frame, so streaming inference equals the training graph. Training uses the last frame (ELL).
- RNN: stacked GRU / LSTM (PyTorch semantics) -> linear.
- TCN: causal temporal convolutions over feature frames (TC-ResNet style): a 1x1 input
  projection, residual blocks of dilated causal Conv1d + BatchNorm + ReLU, then a linear head on
  each frame. A block with kernel k and dilation d looks back (k - 1) * d frames.
- BC-ResNet (broadcasted residual learning, Kim et al. 2021), made causal: the features are an
  image (channels, frequency, time); every block runs a depthwise conv over frequency within the
  frame (SubSpectral norm), averages over frequency, runs a dilated causal depthwise conv over
  time plus a pointwise conv, and broadcasts that back over frequency (residual). Strides are over
  frequency only, so the frame rate never changes; the classifier runs on every frame and its
  logits are averaged over the last POOL_FRAMES frames (causal stand-in for BC-ResNet's global
  average pooling over time; pooling the logits equals pooling the embedding, since the
  classifier is linear, and costs only classes x frames per step).
"""

from __future__ import annotations

import torch
from torch import nn

from core.train.config import TrainConfig


class Normalize(nn.Module):
    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def forward(self, x):
        return (x - self.mean) / self.std


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """ELL's (and ONNX's default) hard sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class HardGRU(nn.Module):
    """A stacked, batch-first GRU with hard-sigmoid gates (the ELL DevKit's cell), otherwise
    PyTorch's GRU exactly: the same parameter names and initialisation, gate order (r, z, n), the
    reset gate applied after the recurrent matmul (linear_before_reset), h' = (1 - z) n + z h.
    nn.GRU has no choice of gate activation, hence this module (a time loop in Python: about 2x
    slower to train than nn.GRU on a CPU)."""

    gate_activation = "hard_sigmoid"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers, self.dropout = input_size, hidden_size, num_layers, dropout
        bound = hidden_size ** -0.5
        for k in range(num_layers):
            n_in = input_size if k == 0 else hidden_size
            for name, shape in ((f"weight_ih_l{k}", (3 * hidden_size, n_in)),
                                (f"weight_hh_l{k}", (3 * hidden_size, hidden_size)),
                                (f"bias_ih_l{k}", (3 * hidden_size,)), (f"bias_hh_l{k}", (3 * hidden_size,))):
                self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hid, last = self.hidden_size, []
        for k in range(self.num_layers):
            w_hh, b_hh = getattr(self, f"weight_hh_l{k}"), getattr(self, f"bias_hh_l{k}")
            gi = nn.functional.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}"))
            h = x.new_zeros(x.shape[0], hid) if state is None else state[k]
            outs = []
            for t in range(x.shape[1]):
                gh = nn.functional.linear(h, w_hh, b_hh)
                g = gi[:, t]
                rz = hard_sigmoid(g[:, : 2 * hid] + gh[:, : 2 * hid])  # r and z in one op
                r, z = rz[:, :hid], rz[:, hid:]
                n = torch.tanh(g[:, 2 * hid :] + r * gh[:, 2 * hid :])
                h = (1 - z) * n + z * h
                outs.append(h)
            x = torch.stack(outs, dim=1)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
            last.append(h)
        return x, torch.stack(last)


class RNNSpotter(nn.Module):
    def __init__(self, n_features: int, n_classes: int, cfg: TrainConfig):
        super().__init__()
        self.norm = Normalize(n_features)
        dropout = cfg.dropout if cfg.num_layers > 1 else 0.0
        if cfg.gate_activation == "hard_sigmoid":
            self.rnn = HardGRU(n_features, cfg.hidden_size, cfg.num_layers, dropout)
        else:
            cls = nn.GRU if cfg.architecture == "gru" else nn.LSTM
            self.rnn = cls(n_features, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(cfg.hidden_size, n_classes)

    def forward(self, x, state=None):
        y, _ = self.rnn(self.norm(x), state)
        return torch.log_softmax(self.head(y), dim=-1)


class CausalConv1d(nn.Conv1d):
    """Conv1d over time that sees only the past: left padding of (kernel - 1) * dilation."""

    def forward(self, x):
        pad = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(nn.functional.pad(x, (pad, 0)))


class TCNBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return x + self.drop(torch.relu(self.bn(self.conv(x))))


class TCNSpotter(nn.Module):
    def __init__(self, n_features: int, n_classes: int, cfg: TrainConfig):
        super().__init__()
        self.norm = Normalize(n_features)
        ch = cfg.tcn_channels
        self.inp = nn.Conv1d(n_features, ch, 1)
        self.blocks = nn.Sequential(*[TCNBlock(ch, cfg.tcn_kernel, 2**i, cfg.dropout)
                                      for i in range(cfg.num_layers * 2)])
        self.head = nn.Conv1d(ch, n_classes, 1)

    @property
    def receptive_field(self) -> int:
        return 1 + sum((b.conv.kernel_size[0] - 1) * b.conv.dilation[0] for b in self.blocks)

    def forward(self, x, state=None):
        h = torch.relu(self.inp(self.norm(x).transpose(1, 2)))  # (batch, channels, frames)
        y = self.head(self.blocks(h)).transpose(1, 2)
        return torch.log_softmax(y, dim=-1)


def _causal(x, frames: int):
    """Zero-pad `frames` steps before the first one on the last (time) axis."""
    return nn.functional.pad(x, (frames, 0)) if frames else x


class SubSpectralNorm(nn.Module):
    """BatchNorm per (channel, frequency sub-band); at inference a per-(channel, frequency) affine,
    so export sees one Mul and one Add (no reshape over the time axis)."""

    def __init__(self, channels: int, n_freq: int, max_bands: int = 5):
        super().__init__()
        self.bands = next(b for b in range(min(max_bands, n_freq), 0, -1) if n_freq % b == 0)
        self.bn = nn.BatchNorm2d(channels * self.bands)

    def forward(self, x):  # (batch, channels, freq, time)
        b, c, f, t = x.shape
        if self.training:
            return self.bn(x.reshape(b, c * self.bands, f // self.bands, t)).reshape(b, c, f, t)
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        shift = self.bn.bias - self.bn.running_mean * scale
        rep = f // self.bands  # each band's value repeated over its frequency bins
        return x * scale.reshape(c, self.bands, 1).repeat_interleave(rep, 1).reshape(c, f, 1) + \
            shift.reshape(c, self.bands, 1).repeat_interleave(rep, 1).reshape(c, f, 1)


POOL_FRAMES = 24  # ~0.8 s at a 512-sample hop (bed/cat/happy, 2048 rows, 3 epochs: 90 % vs 60 % without)


class BCBlock(nn.Module):
    """One broadcasted residual block; a transition block (channels or frequency stride change)
    starts with a pointwise conv and has no identity shortcut."""

    def __init__(self, cin: int, cout: int, n_freq: int, stride_f: int, dilation: int, dropout: float):
        super().__init__()
        self.transition = cin != cout or stride_f != 1
        self.pre = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()) \
            if self.transition else nn.Identity()
        self.freq = nn.Conv2d(cout, cout, (3, 1), stride=(stride_f, 1), padding=(1, 0), groups=cout, bias=False)
        self.n_freq = (n_freq - 1) // stride_f + 1
        self.ssn = SubSpectralNorm(cout, self.n_freq)
        self.history = 2 * dilation
        self.time = nn.Conv2d(cout, cout, (1, 3), dilation=(1, dilation), groups=cout, bias=False)
        self.post = nn.Sequential(nn.BatchNorm2d(cout), nn.SiLU(), nn.Conv2d(cout, cout, 1, bias=False),
                                  nn.Dropout2d(dropout))

    def forward(self, x):  # (batch, channels, freq, time)
        aux = self.ssn(self.freq(self.pre(x)))
        y = self.post(self.time(_causal(aux.mean(2, keepdim=True), self.history)))  # (batch, channels, 1, time)
        y = y + aux if self.transition else y + aux + x
        return torch.relu(y)


class BCResNetSpotter(nn.Module):
    """Stem conv 5x5 (stride 2 over frequency), four stages of cfg.bc_blocks blocks with widths
    bc_channels x (1, 1.5, 2, 2.5), frequency strides (1, 2, 2, 1) and time dilations (1, 2, 4, 8),
    then a depthwise 5x5 conv (no frequency padding), pointwise conv, mean over frequency, a
    pointwise classifier on every frame and the mean of its logits over the last POOL_FRAMES."""

    def __init__(self, n_features: int, n_classes: int, cfg: TrainConfig):
        super().__init__()
        self.norm = Normalize(n_features)
        base = cfg.bc_channels
        widths = [2 * base, base, int(base * 1.5), 2 * base, int(base * 2.5), 4 * base]
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 5, stride=(2, 1), padding=(2, 0), bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        f = (n_features - 1) // 2 + 1
        blocks = []
        for stage, (stride, dil) in enumerate(zip((1, 2, 2, 1), (1, 2, 4, 8))):
            for k in range(cfg.bc_blocks):
                blk = BCBlock(widths[stage] if k == 0 else widths[stage + 1], widths[stage + 1], f,
                              stride if k == 0 else 1, dil, cfg.dropout)
                f = blk.n_freq
                blocks.append(blk)
        self.blocks = nn.Sequential(*blocks)
        c = widths[4]
        kf = min(5, f)
        self.head_dw = nn.Conv2d(c, c, (kf, 5), groups=c, bias=False)
        self.head = nn.Sequential(nn.Conv2d(c, widths[5], 1, bias=False), nn.BatchNorm2d(widths[5]), nn.ReLU())
        self.classify = nn.Conv2d(widths[5], n_classes, 1)
        # the causal mean over time as a fixed depthwise conv (torch exports avg_pool2d with an If)
        self.register_buffer("pool", torch.full((n_classes, 1, 1, POOL_FRAMES), 1.0 / POOL_FRAMES))

    @property
    def receptive_field(self) -> int:
        return 1 + 4 + sum(b.history for b in self.blocks) + 4 + POOL_FRAMES - 1

    def forward(self, x, state=None):
        h = self.norm(x).transpose(1, 2).unsqueeze(1)  # (batch, 1, features, frames)
        h = self.blocks(self.stem(_causal(h, 4)))
        h = self.head(self.head_dw(_causal(h, 4))).mean(2, keepdim=True)  # (batch, channels, 1, frames)
        y = self.classify(h)  # (batch, classes, 1, frames)
        y = nn.functional.conv2d(_causal(y, POOL_FRAMES - 1), self.pool, groups=self.pool.shape[0])
        return torch.log_softmax(y.mean(2).transpose(1, 2), dim=-1)  # (batch, frames, classes); mean: no If


def build(n_features: int, n_classes: int, cfg: TrainConfig) -> nn.Module:
    if cfg.architecture == "tcn":
        return TCNSpotter(n_features, n_classes, cfg)
    if cfg.architecture == "bcresnet":
        return BCResNetSpotter(n_features, n_classes, cfg)
    return RNNSpotter(n_features, n_classes, cfg)
