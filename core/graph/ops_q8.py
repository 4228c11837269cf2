"""Quantized ops: int8 weights per output channel, activations quantized with calibrated scales
(core.quantize makes them). The interpreter here and the compiled code (core/compiler/lower_q8.py)
follow one arithmetic, bit for bit:

    quantize     v = x * inv_scale                   float32 multiply (never fused)
                 v = v > -Q ? v : -Q;  v = v < Q ? v : Q     (NaN becomes -Q)
                 q = (v + 1.5*2^23) - 1.5*2^23       float32: rounds half to even, exact for |v| <= Q
    accumulate   acc[o] = sum_k w[o, k] * q[k]       int32, exact: the shape check keeps
                                                     K * 127 * Q below 2^31
    dequantize   y[o] = float32(acc[o]) * scale[o] + b[o]   two float32 roundings (never fused)

Q is 127 for int8 activations (`x_bits` 8, the default) and 32767 for int16 (`x_bits` 16).
inv_scale = float32(1 / x_scale) and scale[o] = float32(x_scale * w_scale[o]) (`q8_consts`), both
computed in float64 and rounded once, here and in the compiler alike.

dense_q8: weight int8 (M, K), w_scale (M,), optional bias (M,); attrs x_scale, x_bits.
gru_q8 / lstm_q8: w_ih, w_hh int8 in PyTorch's layout (core.graph.ops_rnn), w_ih_scale and
w_hh_scale per row, b_ih and b_hh float32; attrs as gru/lstm plus x_scale, x_bits (the input)
and h_scale, h_bits (the hidden state, quantized afresh each step for the recurrent matmul).
Gates, cell and hidden state stay float32: the same time loop as the float ops.
"""

from __future__ import annotations

import numpy as np

from core.graph.ops import _p, a_int, a_num, check_param, op
from core.graph.ops_rnn import _RNN_ATTRS, _gru_state, _lstm_state, _rnn_shape, gru_steps, lstm_steps

MAGIC = np.float32(12582912.0)  # 1.5 * 2^23: float32 x + MAGIC - MAGIC rounds x to an integer, half to even
QMAX = {8: 127, 16: 32767}
ACC_LIMIT = 1 << 31
_BITS = a_int(8, 16, required=False)  # 8 or 16 (bits() refuses the rest)
_SCALE = a_num(1e-30, 1e30)


def bits(node, key: str = "x_bits") -> int:
    b = int(node.attrs.get(key, 8))
    if b not in QMAX:
        raise ValueError(f"{key} must be 8 or 16, got {b}")
    return b


def quantize(x: np.ndarray, inv_scale: np.float32, qmax: int) -> np.ndarray:
    """float32 -> int32 values in [-qmax, qmax], by the rule above."""
    v = np.asarray(x, np.float32) * np.float32(inv_scale)
    lo, hi = np.float32(-qmax), np.float32(qmax)
    v = np.where(v > lo, v, lo)
    v = np.where(v < hi, v, hi)
    return ((v + MAGIC) - MAGIC).astype(np.int32)


def q8_consts(act_scale: float, w_scale: np.ndarray) -> tuple[np.float32, np.ndarray]:
    """(inv_scale, per-row output scale) in float32, each rounded once from float64."""
    inv = np.float32(1.0 / float(act_scale))
    scale = (float(act_scale) * np.asarray(w_scale, np.float64)).astype(np.float32)
    return inv, scale


def dequantize(acc: np.ndarray, scale: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = acc.astype(np.float32) * scale
    return (y + bias).astype(np.float32) if bias is not None else y.astype(np.float32)


def _check_acc(k: int, act_bits: int, what: str) -> None:
    if k * 127 * QMAX[act_bits] >= ACC_LIMIT:
        raise ValueError(f"{what}: {k} inputs of {act_bits} bits could overflow the int32 accumulator "
                         f"(at most {(ACC_LIMIT - 1) // (127 * QMAX[act_bits])})")


def matmul_q8(x: np.ndarray, w: np.ndarray, act_scale: float, act_bits: int, w_scale: np.ndarray,
              bias: np.ndarray | None) -> np.ndarray:
    """x (..., K) float32 -> (..., M): quantize x, exact int32 products with int8 w (M, K), dequantize."""
    inv, scale = q8_consts(act_scale, w_scale)
    acc = quantize(x, inv, QMAX[act_bits]) @ w.astype(np.int32).T  # int32, exact
    return dequantize(acc, scale, bias)


# ------------------------------------------------------------------ dense
def _dense_q8_shape(node, s):
    if len(s[0]) != 1:
        raise ValueError(f"input {s[0]} is not a vector")
    m = check_param(node, "weight", (None, s[0][0])).shape[0]
    check_param(node, "w_scale", (m,))
    if "bias" in node.params:
        check_param(node, "bias", (m,))
    _check_acc(s[0][0], bits(node), "weight")
    return (m,)


@op("dense_q8", _dense_q8_shape, attrs={"x_scale": _SCALE, "x_bits": _BITS}, param_dtypes={"weight": np.int8})
def _dense_q8(node, xs, state):
    return matmul_q8(xs[0], _p(node, "weight"), node.attrs["x_scale"], bits(node), _p(node, "w_scale"),
                     node.params.get("bias"))


# ------------------------------------------------------------------ recurrent
def _rnn_q8_shape(node, s):
    out = _rnn_shape(node, s)
    g = _p(node, "w_ih").shape[0]
    check_param(node, "w_ih_scale", (g,))
    check_param(node, "w_hh_scale", (g,))
    _check_acc(s[0][0], bits(node), "w_ih")
    _check_acc(out[0], bits(node, "h_bits"), "w_hh")
    return out


_RNN_Q8_ATTRS = _RNN_ATTRS | {"x_scale": _SCALE, "x_bits": _BITS, "h_scale": _SCALE, "h_bits": _BITS}
_RNN_Q8_DTYPES = {"w_ih": np.int8, "w_hh": np.int8}


def _q8_gi(node, x):
    return matmul_q8(x, _p(node, "w_ih"), node.attrs["x_scale"], bits(node), _p(node, "w_ih_scale"),
                     _p(node, "b_ih"))


def _q8_rec(node):
    """rec(v, rows) of gru_steps / lstm_steps with int8 W_hh and v quantized by h_scale."""
    w = _p(node, "w_hh").astype(np.int32)
    inv, scale = q8_consts(node.attrs["h_scale"], _p(node, "w_hh_scale"))
    qmax, b = QMAX[bits(node, "h_bits")], _p(node, "b_hh")
    return lambda v, rows: dequantize(w[rows] @ quantize(v, inv, qmax), scale[rows], b[rows])


@op("gru_q8", _rnn_q8_shape, _gru_state, arity=(1, 2), attrs=_RNN_Q8_ATTRS, param_dtypes=_RNN_Q8_DTYPES)
def _gru_q8(node, xs, state):
    return gru_steps(node, xs, state, _q8_gi(node, xs[0]), _q8_rec(node))


@op("lstm_q8", _rnn_q8_shape, _lstm_state, arity=(1, 2), attrs=_RNN_Q8_ATTRS, param_dtypes=_RNN_Q8_DTYPES)
def _lstm_q8(node, xs, state):
    return lstm_steps(node, xs, state, _q8_gi(node, xs[0]), _q8_rec(node))
