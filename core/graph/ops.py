"""Op registry: per op, its output shape, its initial state and its numpy kernel.

Kernels take inputs with a leading time axis, shape (T, *frame_shape), and return (T, ...):
streaming is T = 1, a whole clip is one call. Stateful kernels carry `state` across calls, so
any split of a sequence into calls gives the same frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ModelFormatError
from core.features import dsp
from core.graph.ir import MAX_ELEMENTS, Node

Shape = tuple[int, ...]


# ------------------------------------------------------------------ declared attributes
def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer()


def _is_num(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v)


def _show(v) -> str:
    return repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."


def _bound(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Attr:
    """An attribute an op reads: its kind and range. `check_attrs` refuses a node whose value does
    not fit, before anything runs or allocates (strings where numbers belong, window_size 1e12).

    kind: "int", "num" (finite), "bool", "str" (one of `choices`), "ints"/"nums" (lists of
    at most `max_len` of them), "opt_ints" (a list of ints or nulls), "pairs" (a list of
    [int, int]). lo/hi bound every number; `nullable` lets null mean "absent".
    """

    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    choices: tuple = ()
    required: bool = True
    nullable: bool = False
    max_len: int = 8

    def _scalar(self, v) -> bool:
        if self.kind in ("int", "ints", "opt_ints", "pairs"):
            return _is_int(v) and self.lo <= v <= self.hi
        return _is_num(v) and self.lo <= v <= self.hi

    def problem(self, v) -> str | None:
        """None if `v` fits, else what is wrong (phrased to follow the attribute's name)."""
        if v is None and self.nullable:
            return None
        rng = "" if math.isinf(self.lo) and math.isinf(self.hi) else f" in [{_bound(self.lo)}, {_bound(self.hi)}]"
        if self.kind == "bool":
            return None if isinstance(v, (bool, np.bool_)) else f"must be true or false, got {_show(v)}"
        if self.kind == "str":
            return None if isinstance(v, str) and v in self.choices else (
                f"must be one of {', '.join(self.choices)}, got {_show(v)}")
        if self.kind in ("int", "num"):
            word = "an integer" if self.kind == "int" else "a finite number"
            return None if self._scalar(v) else f"must be {word}{rng}, got {_show(v)}"
        if not isinstance(v, (list, tuple)) or len(v) > self.max_len:
            return f"must be a list of at most {self.max_len} values, got {_show(v)}"
        for x in v:
            if self.kind == "pairs":
                ok = isinstance(x, (list, tuple)) and len(x) == 2 and all(self._scalar(y) for y in x)
            else:
                ok = (x is None and self.kind == "opt_ints") or self._scalar(x)
            if not ok:
                word = {"ints": "an integer", "nums": "a finite number", "opt_ints": "an integer or null",
                        "pairs": "a pair of integers"}[self.kind]
                return f"has an entry {_show(x)} that is not {word}{rng}"
        return None


def a_int(lo: int = 1, hi: int = MAX_ELEMENTS, **kw) -> Attr:
    return Attr("int", lo, hi, **kw)


def a_num(lo: float = -math.inf, hi: float = math.inf, **kw) -> Attr:
    return Attr("num", lo, hi, **kw)


def a_choice(choices, **kw) -> Attr:
    return Attr("str", choices=tuple(choices), **kw)


def a_bool(**kw) -> Attr:
    return Attr("bool", **kw)


@dataclass(frozen=True)
class OpDef:
    shape: Callable[[Node, list[Shape]], Shape]
    run: Callable[[Node, list[np.ndarray], Any], np.ndarray]
    init_state: Callable[[Node, list[Shape]], Any] | None = None
    arity: tuple[int, int] = (1, 1)  # min and max number of inputs
    attrs: dict[str, Attr] = field(default_factory=dict)  # the attributes `run` reads
    # parameters that are not float32 (int8 weights of the quantized ops), by name; the rest are float32
    param_dtypes: dict[str, np.dtype] = field(default_factory=dict)

    def param_dtype(self, key: str) -> np.dtype:
        return self.param_dtypes.get(key, np.dtype(np.float32))


OPS: dict[str, OpDef] = {}


def op(name: str, shape, init_state=None, arity=(1, 1), attrs: dict[str, Attr] | None = None,
       param_dtypes: dict[str, type] | None = None):
    def deco(run):
        dts = {k: np.dtype(v) for k, v in (param_dtypes or {}).items()}
        OPS[name] = OpDef(shape, run, init_state, arity, dict(attrs or {}), dts)
        return run

    return deco


def check_attrs(node: Node) -> None:
    """Refuse a node whose attributes do not fit its op's declaration (ModelFormatError naming both)."""
    for key, spec in OPS[node.op].attrs.items():
        if key not in node.attrs:
            if spec.required:
                raise ModelFormatError(f"node {node.id!r} ({node.op}) lacks attribute {key!r}")
            continue
        problem = spec.problem(node.attrs[key])
        if problem:
            raise ModelFormatError(f"node {node.id!r} ({node.op}): attribute {key!r} {problem}")


def check_param(node: Node, key: str, shape: tuple) -> np.ndarray:
    """The parameter, if its shape is `shape` (None: any size on that axis); else a ValueError."""
    w = _p(node, key)
    if w.ndim != len(shape) or any(want is not None and have != want for have, want in zip(w.shape, shape)):
        want = "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"
        raise ValueError(f"parameter {key!r} has shape {w.shape}, expected {want}")
    return w


def _same(node: Node, s: list[Shape]) -> Shape:
    return s[0]


def _p(node: Node, key: str) -> np.ndarray:
    try:
        return node.params[key]
    except KeyError:
        raise ModelFormatError(f"node {node.id!r} ({node.op}) lacks parameter {key!r}") from None


# ------------------------------------------------------------------ plumbing
@op("input", lambda n, s: (int(n.attrs["size"]),), arity=(0, 0), attrs={"size": a_int()})
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
@op("scale", _same, attrs={"factor": a_num()})
def _scale(node, xs, state):
    return xs[0] * np.float32(node.attrs["factor"])


def _iir_state(node, s):
    a = node.attrs["a"]
    b = node.attrs["b"]
    return {"zi": np.zeros(max(len(a), len(b)) - 1)}


MAX_IIR_TAPS = 64


def _iir_shape(node, s):
    if node.attrs["a"][0] == 0:
        raise ValueError("a[0] must not be 0")
    return s[0]


_IIR_TAPS = Attr("nums", max_len=MAX_IIR_TAPS)


@op("iir", _iir_shape, _iir_state, attrs={"a": _IIR_TAPS, "b": _IIR_TAPS})
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


@op("frame_buffer", lambda n, s: (int(n.attrs["window_size"]),), _buffer_state, attrs={"window_size": a_int()})
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


@op("window", _same, attrs={"kind": a_choice(dsp.WINDOWS)})
def _window(node, xs, state):
    coeffs = dsp.window_coeffs(node.attrs["kind"], xs[0].shape[1]).astype(np.float32)
    return xs[0] * coeffs


def _fft_shape(node, s):
    return (int(node.attrs["n_fft"]) // 2 + 1,)


MAX_FFT = 1 << 16  # 4 s at 16 kHz; keyword spotting uses 256..2048


@op("fft_mag", _fft_shape, attrs={"n_fft": a_int(1, MAX_FFT), "power": a_bool(required=False)})
def _fft_mag(node, xs, state):
    """|rfft| of n_fft points (zero padded), no 1/N scaling; power=True gives |X|^2 / n_fft."""
    n_fft = int(node.attrs["n_fft"])
    spec = np.fft.rfft(xs[0].astype(np.float64), n=n_fft, axis=-1)
    power = spec.real**2 + spec.imag**2
    if node.attrs.get("power", False):
        return (power / n_fft).astype(np.float32)
    return np.sqrt(power).astype(np.float32)


@op("filterbank", lambda n, s: (check_param(n, "weights", (None, s[0][-1])).shape[0],))
def _filterbank(node, xs, state):
    w = _p(node, "weights")  # (n_filters, n_bins)
    x = xs[0]
    n = min(x.shape[1], w.shape[1])
    return (x[:, :n].astype(np.float64) @ w[:, :n].T.astype(np.float64)).astype(np.float32)


@op("log", _same, attrs={"delta": a_num(required=False)})
def _log(node, xs, state):
    return np.log(xs[0].astype(np.float64) + float(node.attrs.get("delta", 0.0))).astype(np.float32)


def _dct_shape(node, s):
    n_in = int(s[0][0])
    n_out = int(node.attrs.get("n_out") or n_in)
    if n_out * n_in > MAX_ELEMENTS:  # the (n_out, n_in) matrix is built when the op runs
        raise ValueError(f"a DCT of {n_out} x {n_in} values exceeds {MAX_ELEMENTS}")
    return (n_out,)


@op("dct", _dct_shape, attrs={"n_out": a_int(required=False, nullable=True)})
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


@op("unary", _same, attrs={"fn": a_choice(_UNARY)})
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


@op("binary", _broadcast_shape, arity=(2, 2), attrs={"fn": a_choice(_BINARY)})
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


def dense_out(node, s) -> int:
    """Output size of a dense layer on the last axis of s[0]: weight (out, in), optional bias (out,)."""
    if not s[0]:
        raise ValueError("input has no axis to multiply")
    out = check_param(node, "weight", (None, s[0][-1])).shape[0]
    if "bias" in node.params:
        check_param(node, "bias", (out,))
    return out


def _dense_shape(node, s):
    if len(s[0]) != 1 and int(np.prod(s[0])) != s[0][-1]:
        raise ValueError(f"input {s[0]} is not a vector (dense_nd multiplies the last axis)")
    return (dense_out(node, s),)


@op("dense", _dense_shape)
def _dense(node, xs, state):
    y = xs[0] @ _p(node, "weight").T
    if "bias" in node.params:
        y = y + node.params["bias"]
    return y.astype(np.float32)


# importing registers the recurrent ops, the VAD and the ONNX-import ops
from core.graph import ops_nn, ops_q8, ops_rnn  # noqa: E402,F401
