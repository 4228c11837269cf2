"""Op registry: per op, its output shape, its initial state and its numpy kernel.

Kernels take inputs with a leading time axis, shape (T, *frame_shape), and return (T, ...):
streaming is T = 1, a whole clip is one call. Stateful kernels carry `state` across calls, so
any split of a sequence into calls gives the same frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ModelFormatError
from core.features import dsp
from core.graph.ir import Node

Shape = tuple[int, ...]


@dataclass(frozen=True)
class OpDef:
    shape: Callable[[Node, list[Shape]], Shape]
    run: Callable[[Node, list[np.ndarray], Any], np.ndarray]
    init_state: Callable[[Node, list[Shape]], Any] | None = None
    arity: tuple[int, int] = (1, 1)  # min and max number of inputs


OPS: dict[str, OpDef] = {}


def op(name: str, shape, init_state=None, arity=(1, 1)):
    def deco(run):
        OPS[name] = OpDef(shape, run, init_state, arity)
        return run

    return deco


def _same(node: Node, s: list[Shape]) -> Shape:
    return s[0]


def _p(node: Node, key: str) -> np.ndarray:
    try:
        return node.params[key]
    except KeyError:
        raise ModelFormatError(f"node {node.id!r} ({node.op}) lacks parameter {key!r}") from None


# ------------------------------------------------------------------ plumbing
@op("input", lambda n, s: (int(n.attrs["size"]),), arity=(0, 0))
def _input(node, xs, state):
    raise AssertionError("the interpreter feeds input nodes")


@op("output", _same)
def _output(node, xs, state):
    return xs[0]


@op("identity", _same)
def _identity(node, xs, state):
    return xs[0]


@op("constant", lambda n, s: tuple(_p(n, "value").shape), arity=(0, 0))
def _constant(node, xs, state):
    raise AssertionError("the interpreter evaluates constants once")


# ------------------------------------------------------------------ featurizer chain
@op("scale", _same)
def _scale(node, xs, state):
    return xs[0] * np.float32(node.attrs["factor"])


def _iir_state(node, s):
    a = node.attrs["a"]
    b = node.attrs["b"]
    return {"zi": np.zeros(max(len(a), len(b)) - 1)}


@op("iir", _same, _iir_state)
def _iir(node, xs, state):
    """y[n] = sum b[k] x[n-k] - sum_{k>=1} a[k] y[n-k]; time runs through the frames in order."""
    x = xs[0]
    flat = x.reshape(-1).astype(np.float64)
    if len(state["zi"]) == 0:
        y = flat * (node.attrs["b"][0] / node.attrs["a"][0])
    else:
        from scipy.signal import lfilter  # slow to import; only pre-emphasis needs it

        y, state["zi"] = lfilter(node.attrs["b"], node.attrs["a"], flat, zi=state["zi"])
    return y.astype(np.float32).reshape(x.shape)


def _buffer_state(node, s):
    return {"buf": np.zeros(int(node.attrs["window_size"]), dtype=np.float32)}


@op("frame_buffer", lambda n, s: (int(n.attrs["window_size"]),), _buffer_state)
def _frame_buffer(node, xs, state):
    """Keep the last window_size samples; each frame shifts in one hop."""
    x = xs[0]
    frames, hop = x.shape[0], x.shape[1]
    w = int(node.attrs["window_size"])
    buf = np.concatenate([state["buf"], x.reshape(-1).astype(np.float32)])
    ends = w + hop * np.arange(1, frames + 1)
    idx = ends[:, None] - w + np.arange(w)[None, :]
    out = buf[idx]
    state["buf"] = buf[len(buf) - w :].copy()
    return out


@op("window", _same)
def _window(node, xs, state):
    coeffs = dsp.window_coeffs(node.attrs["kind"], xs[0].shape[1]).astype(np.float32)
    return xs[0] * coeffs


def _fft_shape(node, s):
    return (int(node.attrs["n_fft"]) // 2 + 1,)


@op("fft_mag", _fft_shape)
def _fft_mag(node, xs, state):
    """|rfft| of n_fft points (zero padded), no 1/N scaling; power=True gives |X|^2 / n_fft."""
    n_fft = int(node.attrs["n_fft"])
    spec = np.fft.rfft(xs[0].astype(np.float64), n=n_fft, axis=-1)
    power = spec.real**2 + spec.imag**2
    if node.attrs.get("power", False):
        return (power / n_fft).astype(np.float32)
    return np.sqrt(power).astype(np.float32)


@op("filterbank", lambda n, s: (int(_p(n, "weights").shape[0]),))
def _filterbank(node, xs, state):
    w = _p(node, "weights")  # (n_filters, n_bins)
    x = xs[0]
    n = min(x.shape[1], w.shape[1])
    return (x[:, :n].astype(np.float64) @ w[:, :n].T.astype(np.float64)).astype(np.float32)


@op("log", _same)
def _log(node, xs, state):
    return np.log(xs[0].astype(np.float64) + float(node.attrs.get("delta", 0.0))).astype(np.float32)


@op("dct", lambda n, s: (int(n.attrs.get("n_out") or s[0][0]),))
def _dct(node, xs, state):
    m = dsp.dct_matrix(xs[0].shape[1], node.attrs.get("n_out"))
    return (xs[0].astype(np.float64) @ m.T).astype(np.float32)


# ------------------------------------------------------------------ element-wise
_UNARY = {
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "neg": np.negative,
    "square": np.square,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "relu": lambda x: np.maximum(x, 0.0),
}
_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


@op("unary", _same)
def _unary(node, xs, state):
    fn = node.attrs["fn"]
    if fn not in _UNARY:
        raise ModelFormatError(f"node {node.id!r}: unknown unary function {fn!r}")
    return _UNARY[fn](xs[0]).astype(np.float32)


def _broadcast_shape(node, s):
    try:
        return tuple(np.broadcast_shapes(s[0], s[1]))
    except ValueError:
        raise ModelFormatError(f"node {node.id!r}: shapes {s[0]} and {s[1]} do not broadcast") from None


@op("binary", _broadcast_shape, arity=(2, 2))
def _binary(node, xs, state):
    fn = node.attrs["fn"]
    if fn not in _BINARY:
        raise ModelFormatError(f"node {node.id!r}: unknown binary function {fn!r}")
    return _BINARY[fn](xs[0], xs[1]).astype(np.float32)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@op("softmax", _same)
def _softmax_op(node, xs, state):
    return _softmax(xs[0].astype(np.float64)).astype(np.float32)


@op("log_softmax", _same)
def _log_softmax(node, xs, state):
    x = xs[0].astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return (x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))).astype(np.float32)


@op("dense", lambda n, s: (int(_p(n, "weight").shape[0]),))
def _dense(node, xs, state):
    y = xs[0] @ _p(node, "weight").T
    if "bias" in node.params:
        y = y + node.params["bias"]
    return y.astype(np.float32)


# importing registers the recurrent ops, the VAD and the ONNX-import ops
from core.graph import ops_nn, ops_rnn  # noqa: E402,F401
