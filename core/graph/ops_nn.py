"""Neural-network ops for imported models: per-frame layout ops, activations, normalisation, and
the streaming temporal ops (convolution, pooling, running mean, delay).

Conventions (shared with ops.py): every op sees its inputs with a leading time axis, (T, *frame),
where `frame` is the node's per-frame shape; streaming is T = 1. Per-frame tensors are stored
row-major and contiguous, so `reshape` never moves data. Attributes are plain JSON values; axes
in attributes are per-frame axes (the time axis is never counted).

Streaming, frame by frame. The model's time axis is the stream: op `conv` at frame t sees the
current input frame and a state buffer of the last (kernel_t - 1) * dilation_t input frames
(zeros after a reset), so it computes exactly a causally padded convolution over time:

    y[t] = b + sum_i W[..., i, ...] . x[t - (kernel_t - 1 - i) * dilation_t]

`pool` does the same for max/average pooling, `time_mean` is the running mean since the last
reset (causal global average pooling over time), and `delay` shifts a stream by whole frames (it
lines up two branches whose latencies differ). `warmup` (conv, pool, time_mean) is the number of
frames after a reset that belong to no model time step (they come out of an earlier op that has
latency): those input frames are treated as padding, as the model's own zero padding would be.
No op here changes the frame rate: strides over time are not streamable and are refused at import.
"""

from __future__ import annotations

import numpy as np

from core.errors import ModelFormatError
from core.graph.ir import MAX_ELEMENTS
from core.graph.ops import Attr, _p, _same, a_bool, a_choice, a_int, a_num, check_param, dense_out, op

_AXIS = a_int(0, 7)
_AXES = Attr("ints", 0, 7)
_OPT_NUM = a_num(required=False)


def _ints(v) -> list[int]:
    return [int(x) for x in v]


def _size(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


# ------------------------------------------------------------------ layout (no arithmetic)
def _reshape_shape(node, s):
    shape = tuple(_ints(node.attrs["shape"]))
    if _size(shape) != _size(s[0]):
        raise ValueError(f"cannot reshape {s[0]} to {shape}")
    return shape


@op("reshape", _reshape_shape, attrs={"shape": Attr("ints", 1, MAX_ELEMENTS)})
def _reshape(node, xs, state):
    """Per-frame reshape to attrs.shape (row-major, no data movement)."""
    x = xs[0]
    return x.reshape((x.shape[0], *_ints(node.attrs["shape"])))


def _transpose_shape(node, s):
    perm = _ints(node.attrs["perm"])
    if sorted(perm) != list(range(len(s[0]))):
        raise ValueError(f"perm {perm} does not fit shape {s[0]}")
    return tuple(s[0][p] for p in perm)


@op("transpose", _transpose_shape, attrs={"perm": _AXES})
def _transpose(node, xs, state):
    """Per-frame axis permutation: out[..., i, ...] = in[..., perm[i], ...] (numpy transpose)."""
    perm = _ints(node.attrs["perm"])
    return np.ascontiguousarray(xs[0].transpose(0, *[p + 1 for p in perm]))


def _concat_shape(node, s):
    axis = int(node.attrs["axis"])
    first = list(s[0])
    for other in s[1:]:
        if len(other) != len(first) or any(a != b for k, (a, b) in enumerate(zip(first, other)) if k != axis):
            raise ValueError(f"cannot concatenate {s[0]} and {other} on axis {axis}")
    first[axis] = sum(x[axis] for x in s)
    return tuple(first)


@op("concat", _concat_shape, arity=(1, 256), attrs={"axis": _AXIS})
def _concat(node, xs, state):
    """Per-frame concatenation of the inputs along attrs.axis."""
    return np.concatenate(xs, axis=int(node.attrs["axis"]) + 1)


def _slices(node, shape):
    """One (start, stop, step) per per-frame axis, from attrs axes/starts/ends/steps (python slices)."""
    sl = [slice(None)] * len(shape)
    a = node.attrs
    for ax, st, en, sp in zip(a["axes"], a["starts"], a["ends"], a.get("steps") or [1] * len(a["axes"])):
        sl[int(ax)] = slice(None if st is None else int(st), None if en is None else int(en), int(sp))
    return tuple(sl)


def _slice_shape(node, s):
    return tuple(len(range(*sl.indices(d))) for sl, d in zip(_slices(node, s[0]), s[0]))


_BOUNDS = Attr("opt_ints", -MAX_ELEMENTS, MAX_ELEMENTS)


@op("slice", _slice_shape, attrs={"axes": _AXES, "starts": _BOUNDS, "ends": _BOUNDS,
                                  "steps": Attr("ints", -MAX_ELEMENTS, MAX_ELEMENTS, required=False, nullable=True)})
def _slice(node, xs, state):
    """Per-frame strided slice: numpy x[starts:ends:steps] on the given per-frame axes."""
    return np.ascontiguousarray(xs[0][(slice(None), *_slices(node, xs[0].shape[1:]))])


def _gather_shape(node, s):
    axis, idx = int(node.attrs["axis"]), _ints(node.attrs["indices"])
    if any(not 0 <= i < s[0][axis] for i in idx):
        raise ValueError(f"indices {idx} out of range for axis {axis} of {s[0]}")
    return tuple(s[0][:axis]) + (len(idx),) + tuple(s[0][axis + 1 :])


@op("gather", _gather_shape, attrs={"axis": _AXIS, "indices": Attr("ints", 0, MAX_ELEMENTS, max_len=1 << 16)})
def _gather(node, xs, state):
    """Per-frame selection of attrs.indices (non-negative) along attrs.axis; the axis keeps its place."""
    return np.take(xs[0], _ints(node.attrs["indices"]), axis=int(node.attrs["axis"]) + 1)


def _pad_shape(node, s):
    pads = node.attrs["pads"]
    return tuple(d + int(b) + int(e) for d, (b, e) in zip(s[0], pads))


@op("pad", _pad_shape, attrs={"pads": Attr("pairs", 0, MAX_ELEMENTS), "value": _OPT_NUM})
def _pad(node, xs, state):
    """Per-frame constant padding: attrs.pads = [[before, after], ...] per axis, attrs.value."""
    pads = [(0, 0)] + [(int(b), int(e)) for b, e in node.attrs["pads"]]
    return np.pad(xs[0], pads, constant_values=float(node.attrs.get("value", 0.0)))


# ------------------------------------------------------------------ element-wise
@op("leaky_relu", _same, attrs={"alpha": _OPT_NUM})
def _leaky_relu(node, xs, state):
    """x if x >= 0 else alpha * x."""
    x = xs[0]
    return np.where(x >= 0, x, np.float32(node.attrs.get("alpha", 0.01)) * x).astype(np.float32)


@op("hard_sigmoid", _same, attrs={"alpha": _OPT_NUM, "beta": _OPT_NUM})
def _hard_sigmoid(node, xs, state):
    """clip(alpha * x + beta, 0, 1) (ONNX HardSigmoid; defaults alpha 0.2, beta 0.5)."""
    a, b = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
    return np.clip(np.float32(a) * xs[0] + np.float32(b), 0.0, 1.0).astype(np.float32)


@op("clip", _same, attrs={"min": a_num(required=False, nullable=True), "max": a_num(required=False, nullable=True)})
def _clip(node, xs, state):
    """min(max(x, attrs.min), attrs.max); a missing bound is unbounded."""
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    return np.clip(xs[0], -np.inf if lo is None else lo, np.inf if hi is None else hi).astype(np.float32)


def _affine_shape(node, s):
    return tuple(np.broadcast_shapes(s[0], _p(node, "scale").shape, _p(node, "shift").shape))


@op("affine", _affine_shape)
def _affine(node, xs, state):
    """x * scale + shift, params broadcast against the per-frame shape (folded BatchNormalization)."""
    return (xs[0] * _p(node, "scale") + _p(node, "shift")).astype(np.float32)


@op("dense_nd", lambda n, s: tuple(s[0][:-1]) + (dense_out(n, s),))
def _dense_nd(node, xs, state):
    """`dense` on the last per-frame axis of an (..., in) frame: (..., in) @ weight.T + bias -> (..., out)."""
    y = xs[0] @ _p(node, "weight").T
    if "bias" in node.params:
        y = y + node.params["bias"]
    return y.astype(np.float32)


def _reduce_shape(node, s):
    axes = set(_ints(node.attrs["axes"]))
    out = tuple(d for k, d in enumerate(s[0]) if k not in axes)
    return out or (1,)


_REDUCE = {"mean": np.mean, "sum": np.sum, "max": np.max, "min": np.min}


@op("reduce", _reduce_shape, attrs={"axes": _AXES, "kind": a_choice(_REDUCE, required=False)})
def _reduce(node, xs, state):
    """Per-frame reduction (attrs.kind: mean, sum, max, min) over attrs.axes; the axes are dropped."""
    x = xs[0]
    kind = node.attrs.get("kind", "mean")
    if kind not in _REDUCE:
        raise ModelFormatError(f"node {node.id!r}: unknown reduction {kind!r}")
    axes = tuple(int(a) + 1 for a in node.attrs["axes"])
    y = _REDUCE[kind](x.astype(np.float64), axis=axes)
    return y.astype(np.float32).reshape(x.shape[0], *_reduce_shape(node, [x.shape[1:]]))


def _layer_norm_shape(node, s):
    if int(node.attrs["n_axes"]) > len(s[0]):
        raise ValueError(f"n_axes {node.attrs['n_axes']} exceeds the input's {len(s[0])} axes")
    for key in ("scale", "bias"):
        if (key == "scale" or key in node.params) and np.broadcast_shapes(s[0], _p(node, key).shape) != s[0]:
            raise ValueError(f"parameter {key!r} of shape {_p(node, key).shape} does not fit input {s[0]}")
    return s[0]


@op("layer_norm", _layer_norm_shape, attrs={"n_axes": a_int(1, 8), "epsilon": a_num(0, 1, required=False)})
def _layer_norm(node, xs, state):
    """Normalise over the last attrs.n_axes per-frame axes: (x - mean) / sqrt(var + eps) * scale + bias."""
    x = xs[0].astype(np.float64)
    axes = tuple(range(x.ndim - int(node.attrs["n_axes"]), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    y = y * _p(node, "scale")
    if "bias" in node.params:
        y = y + node.params["bias"]
    return y.astype(np.float32)


# ------------------------------------------------------------------ streaming temporal ops
def _history(node) -> int:
    return (int(node.attrs.get("kernel_t", 1)) - 1) * int(node.attrs.get("dilation_t", 1))


def _window_state(node, s):
    a = node.attrs
    frame = (int(a["in_channels"]), int(a.get("in_width", 1)))
    return {
        "buf": np.zeros((_history(node), *frame), np.float32),
        "valid": np.zeros(_history(node), bool),
        "seen": 0,
    }


def _out_width(node) -> int:
    a = node.attrs
    w, kw = int(a.get("in_width", 1)), int(a.get("kernel_w", 1))
    dw, sw = int(a.get("dilation_w", 1)), int(a.get("stride_w", 1))
    pl, pr = _ints(a.get("pad_w", [0, 0]))
    out = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if out <= 0:
        raise ValueError(f"window of width {kw} does not fit width {w}")
    return out


def _spatial_out(node, channels: int):
    """A pure temporal op (width 1, kernel width 1) emits (channels,), otherwise (channels, width)."""
    a = node.attrs
    if (
        int(a.get("in_width", 1)) == 1
        and int(a.get("kernel_w", 1)) == 1
        and sum(_ints(a.get("pad_w", [0, 0]))) == 0
    ):
        return (channels,)
    return (channels, _out_width(node))


def _windows(node, x, state, fill: float):
    """The frames each output needs: (T, kernel_t, C, W_padded) views plus their validity mask.

    The buffer holds the last (kernel_t - 1) * dilation_t input frames; input frames within
    `warmup` frames of a reset are invalid (they stand for padding)."""
    a = node.attrs
    t_len = x.shape[0]
    cin, win = int(a["in_channels"]), int(a.get("in_width", 1))
    x = x.reshape(t_len, cin, win).astype(np.float32)
    seen = state["seen"] + np.arange(t_len)
    valid_new = seen >= int(a.get("warmup", 0))
    hist = _history(node)
    buf = np.concatenate([state["buf"], np.where(valid_new[:, None, None], x, 0.0).astype(np.float32)])
    valid = np.concatenate([state["valid"], valid_new])
    state["buf"], state["valid"] = buf[len(buf) - hist :].copy(), valid[len(valid) - hist :].copy()
    state["seen"] += t_len
    pl, pr = _ints(a.get("pad_w", [0, 0]))
    padded = np.pad(buf, ((0, 0), (0, 0), (pl, pr)), constant_values=fill)
    wmask = np.pad(np.ones(win, bool), (pl, pr))
    dt = int(a.get("dilation_t", 1))
    rows = np.arange(t_len)[:, None] + dt * np.arange(int(a.get("kernel_t", 1)))[None, :]  # (T, kt)
    return padded[rows], valid[rows], wmask


def _width_taps(node, arr, j):
    """Column j of the width kernel for every output position: arr[..., W_padded] -> arr[..., W_out]."""
    a = node.attrs
    dw, sw = int(a.get("dilation_w", 1)), int(a.get("stride_w", 1))
    start = j * dw
    return arr[..., start : start + sw * (_out_width(node) - 1) + 1 : sw]


_WINDOW_ATTRS = {
    "in_channels": a_int(),
    "in_width": a_int(required=False),
    "kernel_t": a_int(1, 4096, required=False),
    "dilation_t": a_int(1, 4096, required=False),
    "kernel_w": a_int(required=False),
    "dilation_w": a_int(required=False),
    "stride_w": a_int(required=False),
    "pad_w": Attr("ints", 0, MAX_ELEMENTS, required=False),
    "warmup": a_int(0, MAX_ELEMENTS, required=False),
}


def _check_window(node, s) -> None:
    """The input is in_channels x in_width; the history buffer and padded frame fit MAX_ELEMENTS."""
    a = node.attrs
    frame = int(a["in_channels"]) * int(a.get("in_width", 1))
    if _size(s[0]) != frame:
        raise ValueError(f"input {s[0]} is not {a['in_channels']} channels x width {a.get('in_width', 1)}")
    if len(a.get("pad_w", [0, 0])) != 2:
        raise ValueError("pad_w must be [left, right]")
    padded = int(a["in_channels"]) * (int(a.get("in_width", 1)) + sum(_ints(a.get("pad_w", [0, 0]))))
    if (_history(node) + 1) * padded > MAX_ELEMENTS:
        raise ValueError(f"kernel_t x dilation_t x frame needs more than {MAX_ELEMENTS} elements of state")


def _conv_shape(node, s):
    _check_window(node, s)
    a = node.attrs
    if int(a["in_channels"]) % int(a.get("groups", 1)) or int(a["out_channels"]) % int(a.get("groups", 1)):
        raise ValueError(f"groups {a.get('groups')} does not divide the channels")
    if "bias" in node.params:
        check_param(node, "bias", (int(a["out_channels"]),))
    cin, g = int(a["in_channels"]), int(a.get("groups", 1))
    w = _p(node, "weight")
    if _size(s[0]) != cin * int(a.get("in_width", 1)):
        raise ValueError(f"input {s[0]} is not {cin} channels x width {a.get('in_width', 1)}")
    if w.shape != (int(a["out_channels"]), cin // g, int(a.get("kernel_t", 1)), int(a.get("kernel_w", 1))):
        raise ValueError(f"weight shape {w.shape} does not match the attributes")
    return _spatial_out(node, int(a["out_channels"]))


@op("conv", _conv_shape, _window_state,
    attrs=_WINDOW_ATTRS | {"out_channels": a_int(), "groups": a_int(required=False)})
def _conv(node, xs, state):
    """Streaming convolution over time (causal) and, optionally, over a per-frame width axis.

    Frame: (in_channels, in_width) in, (out_channels, out_width) out ((out_channels,) when the op
    has no width: in_width 1, kernel_w 1, no width padding). weight (out, in/groups, kernel_t,
    kernel_w), optional bias (out,). Over width: stride_w, dilation_w, zero padding pad_w
    [left, right]. Over time: kernel_t taps dilation_t apart ending at the current frame.
      y[t, o, v] = bias[o] + sum_{c in group(o), i, j} weight[o, c, i, j]
                   * x[t - (kernel_t-1-i)*dilation_t, c, v*stride_w - pad_w[0] + j*dilation_w]
    """
    a = node.attrs
    w = _p(node, "weight")
    g = int(a.get("groups", 1))
    cout, cin_g, kt, kw = w.shape
    frames, _, _ = _windows(node, xs[0], state, 0.0)  # (T, kt, Cin, Wp)
    t_len = frames.shape[0]
    wg = w.reshape(g, cout // g, cin_g, kt, kw)
    out = np.zeros((t_len, g, cout // g, _out_width(node)), np.float64)
    fg = frames.reshape(t_len, kt, g, cin_g, -1)
    for j in range(kw):
        taps = _width_taps(node, fg, j)  # (T, kt, g, cin_g, Wout)
        out += np.einsum("tigcv,goci->tgov", taps, wg[..., j], optimize=True)
    out = out.reshape(t_len, cout, -1)
    if "bias" in node.params:
        out += node.params["bias"][None, :, None]
    return out.astype(np.float32).reshape((t_len, *_spatial_out(node, cout)))


def _pool_shape(node, s):
    _check_window(node, s)
    a = node.attrs
    return _spatial_out(node, int(a["in_channels"]))


@op("pool", _pool_shape, _window_state, attrs=_WINDOW_ATTRS | {
    "kind": a_choice(("max", "avg"), required=False), "count_include_pad": a_bool(required=False)})
def _pool(node, xs, state):
    """Streaming max / average pooling (attrs.kind) over kernel_t frames (causal) x kernel_w columns.

    Same window rules as `conv`. Padding (width pads, frames before the first valid frame) is
    ignored by max; average divides by the count of real elements, or by kernel_t * kernel_w when
    attrs.count_include_pad (padding then counts as zeros).
    """
    a = node.attrs
    kind = a.get("kind", "max")
    frames, valid, wmask = _windows(node, xs[0], state, 0.0)  # (T, kt, C, Wp), (T, kt), (Wp,)
    kw = int(a.get("kernel_w", 1))
    mask_full = valid[:, :, None, None] & wmask[None, None, None, :]  # (T, kt, 1, Wp)
    taps = np.stack([_width_taps(node, frames, j) for j in range(kw)], axis=2)  # (T, kt, kw, C, Wout)
    mask = np.stack([_width_taps(node, mask_full, j) for j in range(kw)], axis=2)  # (T, kt, kw, 1, Wout)
    mask = np.broadcast_to(mask, taps.shape)
    t_len, c = taps.shape[0], taps.shape[3]
    taps = taps.reshape(t_len, -1, c, taps.shape[-1])
    mask = mask.reshape(taps.shape)
    if kind == "max":
        y = np.where(mask, taps, -np.inf).max(axis=1)
        y = np.where(np.isfinite(y), y, 0.0)
    elif kind == "avg":
        total = np.where(mask, taps, 0.0).astype(np.float64).sum(axis=1)
        count = taps.shape[1] if a.get("count_include_pad") else np.maximum(mask.sum(axis=1), 1)
        y = total / count
    else:
        raise ModelFormatError(f"node {node.id!r}: unknown pooling {kind!r}")
    return y.astype(np.float32).reshape((t_len, *_spatial_out(node, c)))


def _mean_state(node, s):
    return {"sum": np.zeros(s[0], np.float64), "count": 0, "seen": 0}


@op("time_mean", _same, _mean_state, attrs={"warmup": a_int(0, MAX_ELEMENTS, required=False)})
def _time_mean(node, xs, state):
    """Running mean over time since the last reset: y[t] = mean(x[warmup..t]) (causal global
    average pooling over time; frames within attrs.warmup of a reset are not counted)."""
    x = xs[0].astype(np.float64)
    out = np.empty(x.shape, np.float32)
    warmup = int(node.attrs.get("warmup", 0))
    for t in range(len(x)):
        if state["seen"] >= warmup:
            state["sum"] = state["sum"] + x[t]
            state["count"] += 1
        state["seen"] += 1
        out[t] = state["sum"] / max(state["count"], 1)
    return out


def _delay_state(node, s):
    return {"buf": np.zeros((int(node.attrs["frames"]), *s[0]), np.float32)}


def _delay_shape(node, s):
    if int(node.attrs["frames"]) * _size(s[0]) > MAX_ELEMENTS:
        raise ValueError(f"delaying {node.attrs['frames']} frames of {s[0]} needs more than {MAX_ELEMENTS} elements")
    return s[0]


@op("delay", _delay_shape, _delay_state, attrs={"frames": a_int(0, MAX_ELEMENTS)})
def _delay(node, xs, state):
    """y[t] = x[t - attrs.frames] (zeros for the first frames after a reset)."""
    n = int(node.attrs["frames"])
    if n == 0:
        return xs[0]
    buf = np.concatenate([state["buf"], xs[0].astype(np.float32)])
    state["buf"] = buf[len(buf) - n :].copy()
    return buf[: len(xs[0])]


# ------------------------------------------------------------------ multiply-adds per frame (summary)
def _conv_macs(node, in_shapes, out_shape):
    return int(_size(out_shape) * _p(node, "weight")[0].size)


def _pool_macs(node, in_shapes, out_shape):
    return int(_size(out_shape) * int(node.attrs.get("kernel_t", 1)) * int(node.attrs.get("kernel_w", 1)))


def _elementwise(node, in_shapes, out_shape):
    return _size(out_shape)


def _dense_nd_macs(node, in_shapes, out_shape):
    return int(_size(out_shape) * _p(node, "weight").shape[1])


def _reduce_macs(node, in_shapes, out_shape):
    return _size(in_shapes[0])


MACS = {
    "conv": _conv_macs,
    "pool": _pool_macs,
    "dense_nd": _dense_nd_macs,
    "reduce": _reduce_macs,
    "affine": _elementwise,
    "leaky_relu": _elementwise,
    "hard_sigmoid": _elementwise,
    "clip": _elementwise,
    "time_mean": _elementwise,
    "layer_norm": lambda n, i, o: 3 * _size(o),
}
"""Multiply-adds one frame costs in each op of this module (used by core.graph.summary)."""
