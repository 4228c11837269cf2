"""Keyword-spotter architectures in PyTorch, exported to ONNX by the tests (both exporters), and
the onnxruntime reference they are checked against.

Every model takes (batch, time, features) feature frames (the RNN seq-first variant takes
(time, batch, features)) and returns log-probabilities, either per frame (batch, time, classes)
or for the whole sequence so far (batch, classes): the last step, the final RNN state, or a mean
over time. Weights, batch-norm statistics and input normalisation are random but seeded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_FEATURES, N_CLASSES = 80, 12


def _randomise_norms(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 2 + 3)
                m.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.5)
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)


class RNNNet(nn.Module):
    """norm: None | 'batch' (BatchNorm1d over features) | 'layer' (LayerNorm) | 'input' (fixed
    mean/std); out: 'frames' | 'last' (y[:, -1]) | 'state' (final h of the last layer)."""

    def __init__(self, kind="gru", layers=1, norm=None, out="frames", batch_first=True, hidden=32):
        super().__init__()
        self.kind, self.norm, self.out, self.batch_first = kind, norm, out, batch_first
        cls = nn.GRU if kind == "gru" else nn.LSTM
        self.rnn = cls(N_FEATURES, hidden, layers, batch_first=batch_first)
        self.fc = nn.Linear(hidden, N_CLASSES)
        if norm == "batch":
            self.bn = nn.BatchNorm1d(N_FEATURES)
        elif norm == "layer":
            self.ln = nn.LayerNorm(N_FEATURES)
        elif norm == "input":
            self.register_buffer("mean", torch.linspace(2.0, 6.0, N_FEATURES))
            self.register_buffer("std", torch.linspace(0.5, 2.0, N_FEATURES))

    def forward(self, x, *state):
        if self.norm == "batch":
            x = self.bn(x.transpose(1, 2) if self.batch_first else x.permute(1, 2, 0))
            x = x.transpose(1, 2) if self.batch_first else x.permute(2, 0, 1)
        elif self.norm == "layer":
            x = self.ln(x)
        elif self.norm == "input":
            x = (x - self.mean) / self.std
        given = len(state) > 0
        if given:
            y, h = self.rnn(x, state[0] if self.kind == "gru" else tuple(state))
        else:
            y, h = self.rnn(x)
        if self.out == "last":
            y = y[:, -1] if self.batch_first else y[-1]
        elif self.out == "state":
            y = (h if self.kind == "gru" else h[0])[-1]
        out = F.log_softmax(self.fc(y), dim=-1)
        if given:
            return (out, h) if self.kind == "gru" else (out, *h)
        return out


class TCN(nn.Module):
    """Causal temporal conv net over feature frames (TC-ResNet / DS-CNN style): input conv,
    dilated depthwise-separable residual blocks with batch norm, a causal average pool, global
    average pooling over time (out='pool') or per-frame outputs (out='frames')."""

    def __init__(self, channels=24, out="pool"):
        super().__init__()
        self.out = out
        self.inp = nn.Conv1d(N_FEATURES, channels, 3)
        self.bn0 = nn.BatchNorm1d(channels)
        self.dw = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, groups=channels) for d in (1, 2))
        self.pw = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(2))
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(2))
        # the other causal idiom: pad both sides, then drop the trailing frames
        self.tail = nn.Conv1d(channels, channels, 2, padding=1, groups=4)
        self.fc = nn.Linear(channels, N_CLASSES)

    def forward(self, x):  # (batch, time, features)
        y = x.transpose(1, 2)  # (batch, features, time)
        y = F.relu(self.bn0(self.inp(F.pad(y, (2, 0)))))
        for dw, pw, bn, d in zip(self.dw, self.pw, self.bns, (1, 2)):
            y = F.relu(y + bn(pw(F.relu(dw(F.pad(y, (2 * d, 0)))))))
        y = F.leaky_relu(self.tail(y)[:, :, :-1], 0.1)
        y = F.avg_pool1d(F.pad(y, (2, 0)), 3, stride=1)
        if self.out == "pool":
            return F.log_softmax(self.fc(y.mean(dim=-1)), dim=-1)
        return F.log_softmax(self.fc(y.transpose(1, 2)), dim=-1)


class CRNN(nn.Module):
    """2-D convs over (time, frequency) -- causal in time, strided and pooled in frequency --
    then a GRU over the flattened feature maps."""

    def __init__(self, channels=6, hidden=32):
        super().__init__()
        self.c1 = nn.Conv2d(1, channels, (3, 5), stride=(1, 2), padding=(0, 2))
        self.bn1 = nn.BatchNorm2d(channels)
        self.pool = nn.MaxPool2d((1, 2))
        self.c2 = nn.Conv2d(channels, channels, (2, 3), dilation=(2, 1), padding=(0, 1), groups=2)
        self.gru = nn.GRU(channels * N_FEATURES // 4, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, N_CLASSES)

    def forward(self, x):  # (batch, time, features)
        y = x.unsqueeze(1)  # (batch, 1, time, features)
        y = self.pool(F.relu(self.bn1(self.c1(F.pad(y, (0, 0, 2, 0))))))
        y = torch.sigmoid(self.c2(F.pad(y, (0, 0, 2, 0))))
        b, c, t, f = y.shape
        y = y.permute(0, 2, 1, 3).reshape(b, t, c * f)
        y, _ = self.gru(y)
        return F.log_softmax(self.fc(y), dim=-1)


class MLP(nn.Module):
    """Dense-only per-frame classifier: input normalisation, LeakyReLU, gated hard-sigmoid x tanh
    units, dropout, softmax (not log)."""

    def __init__(self, hidden=48):
        super().__init__()
        self.register_buffer("mean", torch.linspace(1.0, 5.0, N_FEATURES))
        self.register_buffer("scale", torch.linspace(0.3, 1.2, N_FEATURES))
        self.fc1 = nn.Linear(N_FEATURES, hidden)
        self.gate = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(hidden, N_CLASSES)

    def forward(self, x):
        h = F.leaky_relu(self.fc1((x - self.mean) * self.scale), 0.05)
        h = F.hardsigmoid(self.gate(h)) * torch.tanh(self.value(h)) - torch.sigmoid(h) / 4
        return torch.softmax(self.fc2(self.drop(h)), dim=-1)


class Zoo(nn.Module):
    """Per-frame layout ops around a GRU: slices, concat, reshape/transpose/flatten, strided
    slice, split, gather, pad, clip, stack, reductions; then a conv with global average pooling
    over time (GlobalAveragePool) and Flatten."""

    def __init__(self, hidden=16):
        super().__init__()
        self.fc = nn.Linear(40, 40)
        self.gru = nn.GRU(36, hidden, batch_first=True)
        self.conv = nn.Conv1d(hidden + 2, 8, 2)
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.out = nn.Linear(8, N_CLASSES)

    def forward(self, x):  # (batch, time, 80)
        b, t, _ = x.shape
        lo, hi = x[..., :40], x[..., 40:]
        y = torch.cat([hi, torch.clamp(self.fc(lo), -1.0, 2.0)], dim=-1)  # (b, t, 80)
        y = y.reshape(b, t, 8, 10).transpose(2, 3).flatten(2)  # (b, t, 80), columns permuted
        y = y[..., ::2] + F.hardtanh(y[..., 1::2])  # (b, t, 40)
        p, q = y.chunk(2, dim=-1)  # Split
        y = torch.stack([p, q * q], dim=2).sum(dim=2)  # (b, t, 20)
        y = torch.cat([F.pad(y, (3, 1), value=0.5), y[..., 2:6], y.amax(-1, keepdim=True) - y[..., 7:18]], -1)
        h, _ = self.gru(y[..., 1:37])  # (b, t, hidden)
        extra = torch.stack([y[:, :, 0], y.mean(-1)], dim=1)  # (b, 2, t): Gather per frame
        z = torch.cat([h.transpose(1, 2), extra], dim=1)  # (b, hidden + 2, t)
        z = torch.relu(self.conv(F.pad(z, (1, 0))))
        return F.log_softmax(self.out(self.gap(z).flatten(1)), dim=-1)


class FrameMath(nn.Module):
    """Per-frame math on a (4, 20) view of each frame: LayerNorm over two axes, softmax over a
    middle axis, an expanded stream, maximum/minimum, a square, matrix products with a vector and
    a matrix, a mean."""

    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm([4, 20])
        self.v = nn.Parameter(torch.randn(20))
        self.w = nn.Parameter(torch.randn(20, 6))

    def forward(self, x):
        b, t, _ = x.shape
        y = self.ln(x.reshape(b, t, 4, 20))
        z = torch.softmax(y, dim=2)
        e = y[..., :1].expand(b, t, 4, 20)
        m = torch.maximum(z, e * 0.1) - torch.minimum(y, torch.zeros(1)) ** 2
        return torch.cat([m @ self.v, torch.matmul(m, self.w).mean(2)], -1)


def build(arch: str, seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    m = {"rnn": RNNNet, "tcn": TCN, "crnn": CRNN, "mlp": MLP, "zoo": Zoo, "math": FrameMath}[arch](**kw)
    _randomise_norms(m, seed + 1)
    return m.eval()


def export(
    model: nn.Module,
    path: Path,
    exporter: str = "legacy",
    opset: int | None = None,
    seq_first: bool = False,
    frames: int = 31,
    state: tuple = (),
) -> Path:
    """Export with a dynamic (batch, time) input; `state` adds RNN state inputs (h0[, c0])."""
    x = torch.zeros((frames, 1, N_FEATURES) if seq_first else (1, frames, N_FEATURES))
    names = ["x"] + [f"s{i}" for i in range(len(state))]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            axes = {"x": {0: "time", 1: "batch"} if seq_first else {0: "batch", 1: "time"}}
            torch.onnx.export(
                model,
                (x, *state),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=names,
                dynamic_axes=axes,
            )
        else:
            from torch.export import Dim

            shapes = ({0: Dim.AUTO, 1: Dim.AUTO},) + (((None,) * len(state),) if state else ())
            torch.onnx.export(
                model,
                (x, *state),
                str(path),
                dynamic_shapes=shapes,
                input_names=names,
                opset_version=opset,
                verbose=False,
            )
    return path


def export_step(model: RNNNet, path: Path) -> Path:
    """Streaming export: one frame per call, hidden state in and out (as ELL-era models were)."""
    layers, hidden = model.rnn.num_layers, model.rnn.hidden_size
    state = [torch.zeros(layers, 1, hidden)] * (1 if model.kind == "gru" else 2)
    x = torch.zeros(1, 1, N_FEATURES)
    names = ["x"] + [f"h{i}" for i in range(len(state))]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x, *state), str(path), dynamo=False, input_names=names)
    return path


# ---------------------------------------------------------------------- onnxruntime reference
def session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def reference(
    path: Path, frames: np.ndarray, per_frame: bool, seq_first: bool = False, extra: dict | None = None
) -> np.ndarray:
    """onnxruntime's answer at every time step t: per-frame models run once over the whole
    sequence (output step t); sequence-level models run on each prefix frames[:t+1]."""
    sess = session(path)
    name = sess.get_inputs()[0].name

    def run(x):
        x = x[:, None, :] if seq_first else x[None]
        return sess.run(None, {name: x.astype(np.float32), **(extra or {})})[0]

    if per_frame:
        y = run(frames)
        y = y[:, 0] if seq_first else y[0]
        return y.reshape(len(y), -1)
    return np.stack([run(frames[: t + 1]).reshape(-1) for t in range(len(frames))])


def reference_step(path: Path, frames: np.ndarray, resets: set[int] = frozenset()) -> np.ndarray:
    """Drive a streaming export one frame per call, carrying its state outputs back in; the state
    is zeroed after each frame index in `resets`."""
    sess = session(path)
    ins = sess.get_inputs()
    state = [np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in ins[1:]]
    out = []
    for t, f in enumerate(frames):
        res = sess.run(
            None,
            {
                ins[0].name: f.reshape(1, 1, -1).astype(np.float32),
                **{i.name: s for i, s in zip(ins[1:], state)},
            },
        )
        out.append(res[0].reshape(-1))
        state = [np.asarray(s, np.float32) for s in res[1:]]
        if t in resets:
            state = [np.zeros_like(s) for s in state]
    return np.stack(out)
