"""Keyword-spotting architectures in PyTorch, all streamable frame by frame.

Input (batch, frames, features); output log-probabilities (batch, frames, classes) for every
frame, so streaming inference equals the training graph. Training uses the last frame (ELL).
- RNN: stacked GRU / LSTM (PyTorch semantics) -> linear.
- TCN: causal temporal convolutions over feature frames (TC-ResNet style): a 1x1 input
  projection, residual blocks of dilated causal Conv1d + BatchNorm + ReLU, then a linear head on
  each frame. A block with kernel k and dilation d looks back (k - 1) * d frames.
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


class RNNSpotter(nn.Module):
    def __init__(self, n_features: int, n_classes: int, cfg: TrainConfig):
        super().__init__()
        self.norm = Normalize(n_features)
        cls = nn.GRU if cfg.architecture == "gru" else nn.LSTM
        self.rnn = cls(n_features, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                       dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
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


def build(n_features: int, n_classes: int, cfg: TrainConfig) -> nn.Module:
    if cfg.architecture == "tcn":
        return TCNSpotter(n_features, n_classes, cfg)
    return RNNSpotter(n_features, n_classes, cfg)
