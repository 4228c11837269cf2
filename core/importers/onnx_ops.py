"""ONNX handlers for per-frame ops: layout (Reshape, Transpose, Squeeze, Concat, Slice, Gather,
Pad, ...), element-wise math, Softmax, Gemm/MatMul and normalisation, plus constant folding of
the ops onnx.reference cannot evaluate (Constant, ConstantFill, Shape, Cast, ...).

A per-frame op never mixes time steps; where an op touches the time axis (a Slice or Gather
taking the last step, a Squeeze of a length-1 time axis) the rules are in onnx_temporal.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from core.importers.limits import MAX_FRAME, MAX_PARAM
from core.importers.onnx_build import Builder
from core.importers.onnx_values import TIME, Bad, Const, Stream, size, squeezed

_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Abs": "abs",
    "Neg": "neg",
}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min"}
_FLOATS = {1, 10, 11, 16}  # float, float16, double, bfloat16
_BIG = 2**31 - 1


def _axis(a: int, rank: int) -> int:
    """ONNX axis `a` (negative counts from the end) of a rank-`rank` tensor; out of range: ValueError
    (the translator reports it as a malformed node)."""
    k = int(a) + rank if int(a) < 0 else int(a)
    if not 0 <= k < rank:
        raise ValueError(f"axis {a} is out of range for rank {rank}")
    return k


class FrameOps(Builder):
    # ------------------------------------------------------------------ constant folding (own table)
    def _fold_Constant(self, node, xs, at):
        if "value" in at:
            return [numpy_helper.to_array(at["value"])]
        for key, dtype in (
            ("value_float", np.float32),
            ("value_floats", np.float32),
            ("value_int", np.int64),
            ("value_ints", np.int64),
        ):
            if key in at:
                return [np.asarray(at[key], dtype)]
        self.fail("only tensor and number constants are supported")

    def _fold_ConstantFill(self, node, xs, at):
        """Legacy (opset <= 6, PyTorch 0.3): a tensor filled with `value`; shape from the input
        when input_as_shape, else the `shape` attribute; plus extra_shape."""
        if at.get("input_as_shape", 0):
            if not xs or xs[0] is None:
                self.fail("input_as_shape needs an input")
            shape = [int(d) for d in np.asarray(xs[0]).reshape(-1)]
        else:
            shape = list(at.get("shape", [])) or (list(np.shape(xs[0])) if xs and xs[0] is not None else [])
        shape += [int(d) for d in at.get("extra_shape", [])]
        if any(d >= TIME for d in shape):
            self.fail("a filled tensor as long as the time axis is not supported")
        self._check_const_shape(shape)
        dtype = helper.tensor_dtype_to_np_dtype(int(at.get("dtype", 1)))
        return [np.full(shape, at.get("value", 0.0), dtype=dtype)]

    def _fold_ConstantOfShape(self, node, xs, at):
        shape = [int(d) for d in np.asarray(xs[0]).reshape(-1)]
        if any(d >= TIME for d in shape):
            self.fail("a constant as long as the time axis is not supported")
        self._check_const_shape(shape)
        value = numpy_helper.to_array(at["value"]).reshape(-1)[0] if "value" in at else np.float32(0)
        return [np.full(shape, value, dtype=np.asarray(value).dtype)]

    def _check_const_shape(self, shape: list[int]) -> None:
        if any(d < 0 for d in shape) or size(shape) > MAX_PARAM:
            self.fail(f"a constant of shape {shape} (at most {MAX_PARAM} elements are allowed)")

    def _fold_Identity(self, node, xs, at):
        return [xs[0]]

    def _fold_Dropout(self, node, xs, at):
        return [xs[0], np.ones(np.shape(xs[0]), bool)]

    def _fold_Cast(self, node, xs, at):
        return [np.asarray(xs[0]).astype(helper.tensor_dtype_to_np_dtype(int(at["to"])))]

    def _fold_Shape(self, node, xs, at):
        return [np.array(np.shape(xs[0]), np.int64)[at.get("start", 0) : at.get("end", None)]]

    # ------------------------------------------------------------------ pass-through
    def _op_Identity(self, node, ins, at):
        return [self.stream(ins[0])]

    def _op_Dropout(self, node, ins, at):
        return [self.stream(ins[0]), Bad("the Dropout mask output is not supported")]

    def _op_Cast(self, node, ins, at):
        if int(at["to"]) not in _FLOATS:
            self.fail("a model input cast to a non-float type is not supported")
        return [self.stream(ins[0])]

    def _op_Shape(self, node, ins, at):
        s = ins[0]
        return [Const(np.array(s.dims, np.int64)[at.get("start", 0) : at.get("end", None)])]

    # ------------------------------------------------------------------ layout
    def _op_Transpose(self, node, ins, at):
        s = self.stream(ins[0])
        perm = [_axis(p, s.rank) for p in at.get("perm", list(range(s.rank))[::-1])]
        dims = tuple(s.dims[p] for p in perm)
        t = perm.index(s.t) if s.t is not None else None
        in_axes = [a for a in range(s.rank) if a != s.t and s.dims[a] != 1]
        out_axes = [p for p in perm if p != s.t and s.dims[p] != 1]
        out = s.with_(dims=dims, t=t)
        if in_axes == out_axes:
            return [out]
        fperm = [in_axes.index(a) for a in out_axes]
        return [self.emit("transpose", [s.node], {"perm": fperm}, None, out)]

    def _axes_arg(self, ins, at, k: int = 1) -> list[int] | None:
        if "axes" in at:
            return [int(a) for a in at["axes"]]
        if len(ins) > k and ins[k] is not None:
            return self.ints(ins[k], "axes")
        return None

    def _op_Squeeze(self, node, ins, at):
        s = self.stream(ins[0])
        axes = self._axes_arg(ins, at)
        axes = (
            [a for a in range(s.rank) if s.dims[a] == 1] if axes is None else [_axis(a, s.rank) for a in axes]
        )
        if s.t is not None and s.t in axes:
            s = self.drop_time(s, keep_axis=True, why="Squeeze removes the time axis")
        dims = tuple(d for k, d in enumerate(s.dims) if k not in axes)
        t = None if s.t is None else s.t - sum(1 for a in axes if a < s.t)
        return [s.with_(dims=dims, t=t)]

    def _op_Unsqueeze(self, node, ins, at):
        s = self.stream(ins[0])
        axes = self._axes_arg(ins, at) or []
        rank = s.rank + len(axes)
        axes = sorted(_axis(a, rank) for a in axes)
        dims, t = list(s.dims), s.t
        for a in axes:
            dims.insert(a, 1)
            if t is not None and a <= t:
                t += 1
        return [s.with_(dims=tuple(dims), t=t)]

    def _op_Reshape(self, node, ins, at):
        s = self.stream(ins[0])
        target = [int(d) for d in at["shape"]] if "shape" in at else self.ints(ins[1], "the target shape")
        return [self.reshape(s, target, allowzero=bool(at.get("allowzero", 0)))]

    def _op_Flatten(self, node, ins, at):
        s = self.stream(ins[0])
        axis = int(at.get("axis", 1))
        axis = s.rank if axis == s.rank else _axis(axis, s.rank)  # Flatten's axis may also be the rank
        return [self.reshape(s, [size(s.dims[:axis]), size(s.dims[axis:])], allowzero=True)]

    def reshape(self, s: Stream, target: list[int], allowzero: bool) -> Stream:
        """A reshape that keeps the time axis whole: (pre, time, post) -> (pre', time, post') with
        the same pre and post sizes is a per-frame reshape. A time axis of a fixed length may
        appear in the target as that number."""
        tgt = [s.dims[i] if (d == 0 and not allowzero and i < s.rank) else d for i, d in enumerate(target)]
        if s.t is None:
            return self._frame_reshape(s, tgt)
        pre, post = size(s.dims[: s.t]), size(s.dims[s.t + 1 :])
        k = tgt.index(TIME) if TIME in tgt else None
        if k is None and self.static_t is not None:
            for i, d in enumerate(tgt):
                if d == self.static_t and -1 not in tgt[:i] and size(tgt[:i]) == pre:
                    k = i
                    tgt[i] = TIME
                    break
        if -1 in tgt:
            i = tgt.index(-1)
            known = size([d for j, d in enumerate(tgt) if j != i])
            total = pre * TIME * post
            if known == 0 or total % known:
                self.fail(f"cannot reshape {self._shape_str(s)} to {target}")
            tgt[i] = total // known
            if k is None and tgt[i] == TIME:
                k = i
        if k is None and self.step_model:
            return self._frame_reshape(
                self.drop_time(s, keep_axis=False, why=""), [d for d in tgt if d != TIME]
            )
        if (
            k is None
            or any(d % TIME == 0 and j != k for j, d in enumerate(tgt))
            or size(tgt[:k]) != pre
            or size(tgt[k + 1 :]) != post
        ):
            self.fail(
                f"reshaping {self._shape_str(s)} to {target} mixes the time axis with other axes; "
                "a streaming model must keep time as an axis of its own"
            )
        out = s.with_(dims=tuple(tgt), t=k)
        return self.canonical(out)

    def _frame_reshape(self, s: Stream, tgt: list[int]) -> Stream:
        if -1 in tgt:
            i = tgt.index(-1)
            known = size([d for j, d in enumerate(tgt) if j != i])
            if known == 0 or size(s.dims) % known:
                self.fail(f"cannot reshape {self._shape_str(s)} to {tgt}")
            tgt[i] = size(s.dims) // known
        if size(tgt) != size(s.dims) or any(d >= TIME for d in tgt):
            self.fail(f"cannot reshape {self._shape_str(s)} to {tgt}")
        return self.canonical(s.with_(dims=tuple(tgt)))

    @staticmethod
    def _shape_str(s: Stream) -> str:
        return "[" + ", ".join("time" if k == s.t else str(d) for k, d in enumerate(s.dims)) + "]"

    def _op_Expand(self, node, ins, at):
        s = self.stream(ins[0])
        shape = self.ints(ins[1], "the Expand shape")
        rank = max(len(shape), s.rank)
        dims = [1] * (rank - s.rank) + list(s.dims)
        t = None if s.t is None else s.t + rank - s.rank
        shape = [1] * (rank - len(shape)) + shape
        out = []
        for k, (a, b) in enumerate(zip(dims, shape)):
            if k == t:
                out.append(TIME)
            elif b >= TIME or (a != 1 and b not in (1, a)):
                self.fail(f"cannot expand {self._shape_str(s)} to {shape}")
            else:
                out.append(max(a, b))
        if size([d for k, d in enumerate(out) if k != t]) > MAX_FRAME:
            self.fail(f"expanding {self._shape_str(s)} to {shape} makes frames larger than allowed")
        like = s.with_(dims=tuple(out), t=t)
        if squeezed(like.frame_dims) == squeezed(s.frame_dims):
            return [like]
        zeros = Const(np.zeros([1 if k == t else d for k, d in enumerate(out)], np.float32))
        like, shapes, _ = self.broadcast([s, zeros])
        return [
            self.emit(
                "binary",
                [self.operand(s, shapes[0], like.delay), self.constant(np.zeros(shapes[1], np.float32))],
                {"fn": "add"},
                None,
                like,
            )
        ]

    def _op_Concat(self, node, ins, at):
        vals = [v for v in ins if v is not None]
        streams = [self.stream(v, "every Concat input") for v in vals]
        rank = streams[0].rank
        axis = _axis(int(at.get("axis", 0 if self.opset < 4 else 1)), rank)
        t = streams[0].t
        if any(s.t != t or s.rank != rank for s in streams):
            self.fail("Concat inputs have their time axes in different places")
        if axis == t:
            self.fail("concatenating along the time axis is not streamable")
        delay = max(s.delay for s in streams)
        if all(s.dims[axis] != 1 for s in streams):
            keep = [k for k in range(rank) if k != t and streams[0].dims[k] != 1]
            shapes, fa = [squeezed(s.frame_dims) for s in streams], keep.index(axis)
        else:
            shapes, fa = [s.frame_dims or (1,) for s in streams], streams[0].frame_axis(axis)
        nodes = [self.operand(s, sh, delay) for s, sh in zip(streams, shapes)]
        dims = list(streams[0].dims)
        dims[axis] = sum(s.dims[axis] for s in streams)
        like = streams[0].with_(
            dims=tuple(dims), delay=delay, tail=max(s.tail + delay - s.delay for s in streams)
        )
        return [self.emit("concat", nodes, {"axis": fa}, None, like)]

    def _op_Split(self, node, ins, at):
        s = self.stream(ins[0])
        axis = _axis(int(at.get("axis", 0)), s.rank)
        if axis == s.t:
            self.fail("splitting the time axis is not streamable")
        n = len(node.output)
        if "split" in at:
            parts = [int(x) for x in at["split"]]
        elif len(ins) > 1 and ins[1] is not None:
            parts = self.ints(ins[1], "split sizes")
        else:
            step = -(-s.dims[axis] // n)
            parts = [min(step, s.dims[axis] - k * step) for k in range(n)]
        outs, start = [], 0
        for p in parts:
            outs.append(self._frame_slice(s, {axis: (start, start + p, 1)}))
            start += p
        return outs

    def _frame_slice(self, s: Stream, cuts: dict[int, tuple[int, int | None, int]]) -> Stream:
        nid, fa = self.view(s, list(cuts))
        dims = list(s.dims)
        for a, (st, en, sp) in cuts.items():
            dims[a] = (
                len(range(st, s.dims[a] if en is None else en, sp))
                if sp > 0
                else len(range(st, -1 if en is None else en, sp))
            )
        attrs = {
            "axes": fa,
            "starts": [c[0] for c in cuts.values()],
            "ends": [c[1] for c in cuts.values()],
            "steps": [c[2] for c in cuts.values()],
        }
        return self.emit("slice", [nid], attrs, None, s.with_(dims=tuple(dims)))

    def _op_Slice(self, node, ins, at):
        s = self.stream(ins[0])
        if self.opset < 10:
            starts, ends = list(at["starts"]), list(at["ends"])
            axes = list(at.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            starts, ends = self.ints(ins[1], "starts"), self.ints(ins[2], "ends")
            axes = (
                self.ints(ins[3], "axes") if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            )
            steps = self.ints(ins[4], "steps") if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        cuts = {}
        for a, st, en, sp in zip(axes, starts, ends, steps):
            a = _axis(a, s.rank)
            if a == s.t:
                s = self.slice_time(s, st, en, sp)
                continue
            if sp == 0:
                self.fail("Slice step 0")
            st2, en2, sp2 = slice(st, en, sp).indices(s.dims[a])
            cuts[a] = (st2, en2 if en2 >= 0 else None, sp2)
        if not cuts or all(c == (0, s.dims[a], 1) for a, c in cuts.items()):
            return [s]
        return [self._frame_slice(s, cuts)]

    def _op_Gather(self, node, ins, at):
        s = self.stream(ins[0])
        idx = np.asarray(self.const(ins[1], "Gather indices"))
        axis = _axis(int(at.get("axis", 0)), s.rank)
        if idx.ndim > 1:
            self.fail("Gather with multi-dimensional indices is not supported")
        if axis == s.t:
            return [self.gather_time(s, idx)]
        d = s.dims[axis]
        picks = [int(i) + d if i < 0 else int(i) for i in idx.reshape(-1)]
        dims = list(s.dims)
        dims[axis] = len(picks)
        nid, (fa,) = self.view(s, [axis])
        out = self.emit(
            "gather",
            [nid],
            {"axis": fa, "indices": picks},
            None,
            s.with_(dims=tuple(dims)),
        )
        if idx.ndim == 0:
            del dims[axis]
            out = out.with_(dims=tuple(dims), t=None if out.t is None else out.t - (axis < out.t))
        return [out]

    def _op_Pad(self, node, ins, at):
        s = ins[0] if isinstance(ins[0], Stream) else self.stream(ins[0])
        mode = at.get("mode", "constant")
        if mode != "constant":
            self.fail(f"Pad mode {mode!r} is not supported (only constant)")
        if self.opset < 11:
            pads, value = list(at.get("pads", at.get("paddings", []))), float(at.get("value", 0.0))
            axes = list(range(s.rank))
        else:
            pads = self.ints(ins[1], "pads")
            value = (
                float(np.asarray(self.const(ins[2], "the pad value")).reshape(-1)[0])
                if len(ins) > 2 and ins[2] is not None
                else 0.0
            )
            axes = self.ints(ins[3], "axes") if len(ins) > 3 and ins[3] is not None else list(range(s.rank))
        n = len(axes)
        padded: dict[int, list[int]] = {}
        dims, pad_t = list(s.dims), s.pad_t
        for a, b, e in zip(axes, pads[:n], pads[n:]):
            a = _axis(a, s.rank)
            if b < 0 or e < 0:
                self.fail("negative pads (cropping) are not supported")
            if a == s.t:
                if (b or e) and value != 0.0:
                    self.fail("padding the time axis with a non-zero value is not supported")
                pad_t = (pad_t[0] + b, pad_t[1] + e)
            elif b or e:
                padded[a] = [b, e]
                dims[a] += b + e
        out = s.with_(dims=tuple(dims), pad_t=pad_t)
        if padded:
            nid, fa = self.view(s, list(padded))
            frame_pads = [[0, 0] for _ in self.shapes[nid]]
            for k, be in zip(fa, padded.values()):
                frame_pads[k] = be
            out = self.emit("pad", [nid], {"pads": frame_pads, "value": value}, None, out).with_(pad_t=pad_t)
        return [out]

    # ------------------------------------------------------------------ element-wise
    def _unary(self, node, ins, op, attrs):
        s = self.stream(ins[0])
        return [self.emit(op, [s.node], attrs, None, s)]

    def _op_Relu(self, node, ins, at):
        return self._unary(node, ins, "unary", {"fn": "relu"})

    def _op_LeakyRelu(self, node, ins, at):
        return self._unary(node, ins, "leaky_relu", {"alpha": float(at.get("alpha", 0.01))})

    def _op_HardSigmoid(self, node, ins, at):
        a, b = float(at.get("alpha", 0.2)), float(at.get("beta", 0.5))
        if np.isclose(a, 0.2) and np.isclose(b, 0.5):
            return self._unary(node, ins, "unary", {"fn": "hard_sigmoid"})
        return self._unary(node, ins, "hard_sigmoid", {"alpha": a, "beta": b})

    def _op_Clip(self, node, ins, at):
        if self.opset < 11:
            lo, hi = at.get("min"), at.get("max")
        else:
            lo = (
                float(np.asarray(self.const(ins[1], "Clip min")))
                if len(ins) > 1 and ins[1] is not None
                else None
            )
            hi = (
                float(np.asarray(self.const(ins[2], "Clip max")))
                if len(ins) > 2 and ins[2] is not None
                else None
            )
        if lo == 0.0 and (hi is None or hi == np.inf):
            return self._unary(node, ins, "unary", {"fn": "relu"})
        attrs = {k: float(v) for k, v in (("min", lo), ("max", hi)) if v is not None and np.isfinite(v)}
        return self._unary(node, ins, "clip", attrs)

    def _op_Softmax(self, node, ins, at):
        log = node.op_type == "LogSoftmax" and node.output[0] not in self.to_softmax
        s = self.stream(ins[0])
        default = -1 if self.opset >= 13 else 1
        axis = _axis(int(at.get("axis", default)), s.rank)
        axes = [axis] if self.opset >= 13 else list(range(axis, s.rank))
        return [self.along(s, axes, "log_softmax" if log else "softmax", {}, None)]

    _op_LogSoftmax = _op_Softmax

    def along(self, s: Stream, axes: list[int], op: str, attrs: dict, params: dict | None) -> Stream:
        """Apply a last-axis op (softmax, layer_norm) over the ONNX `axes` of `s` taken together."""
        if s.t is not None and s.t in axes:
            if not self.step_model:
                self.fail(f"{op} across the time axis is not streamable")
            axes = [a for a in axes if a != s.t]
        frame = list(s.frame_dims) or [1]
        fa = sorted(s.frame_axis(a) for a in axes)
        others = [k for k in range(len(frame)) if k not in fa]
        perm = others + fa
        nid = self.full(s)
        moved = [k for k in perm if frame[k] != 1] != [k for k in range(len(frame)) if frame[k] != 1]
        if moved:
            nid = self.add("transpose", [nid], {"perm": perm})
        inner = size([frame[k] for k in fa])
        outer = size([frame[k] for k in others])
        nid = self.add(op, [self.as_shape(nid, (inner,) if outer == 1 else (outer, inner))], attrs, params)
        if moved:
            nid = self.as_shape(nid, [frame[k] for k in perm])
            nid = self.add("transpose", [nid], {"perm": list(np.argsort(perm))})
        return self.canonical(s.with_(node=nid, pad_t=(0, 0)))

    def _op_Add(self, node, ins, at):
        vals = [v for v in ins if v is not None]
        if self.opset < 7 and at.get("broadcast") and isinstance(vals[1], Const):
            a_rank = vals[0].rank if isinstance(vals[0], Stream) else np.ndim(vals[0].value)
            b = vals[1].value
            axis = int(at.get("axis", a_rank - b.ndim))
            axis = _axis(axis, a_rank)
            vals[1] = Const(b.reshape([1] * axis + list(b.shape) + [1] * (a_rank - axis - b.ndim)))
        out = vals[0]
        for v in vals[1:]:
            like, shapes, _ = self.broadcast([out, v])
            nodes = [self.operand(x, sh, like.delay) for x, sh in zip((out, v), shapes)]
            out = self.emit("binary", nodes, {"fn": _BINARY[node.op_type]}, None, like)
        return [out]

    _op_Sub = _op_Mul = _op_Div = _op_Max = _op_Min = _op_Add

    def _op_Pow(self, node, ins, at):
        s = self.stream(ins[0], "the base of Pow")
        e = np.asarray(self.const(ins[1], "the exponent of Pow"), np.float64)
        if e.size != 1 or float(e.reshape(-1)[0]) not in (1.0, 2.0, 0.5):
            self.fail("Pow is only supported with a constant exponent of 1, 2 or 0.5")
        e = float(e.reshape(-1)[0])
        if e == 1.0:
            return [s]
        return self._unary(node, ins, "unary", {"fn": "square" if e == 2.0 else "sqrt"})

    # ------------------------------------------------------------------ dense
    def dense(self, s: Stream, weight: np.ndarray, bias: np.ndarray | None) -> Stream:
        """A matrix product over the last ONNX axis: (..., in) -> (..., out), weight (out, in)."""
        if s.t == s.rank - 1:
            self.fail("the matrix product runs over the time axis; a streaming model must not mix time steps")
        n_out, k = weight.shape
        if s.dims[-1] != k:
            self.fail(f"weight {weight.shape} does not fit input {self._shape_str(s)}")
        lead = [d for d in s.frame_dims[:-1] if d != 1]
        params = {"weight": weight} | ({"bias": bias} if bias is not None else {})
        op = "dense_nd" if lead else "dense"
        nid = self.as_shape(s.node, tuple(lead) + (k,))
        return self.emit(op, [nid], {}, params, s.with_(dims=s.dims[:-1] + (n_out,)))

    def _op_Gemm(self, node, ins, at):
        s = self.stream(ins[0])
        if at.get("transA", 0):
            self.fail("Gemm with transA over a streamed input is not supported")
        b = np.asarray(self.const(ins[1], "the Gemm weight"), np.float64)
        w = (b if at.get("transB", 0) else b.T) * float(at.get("alpha", 1.0))
        bias = None
        if len(ins) > 2 and ins[2] is not None:
            c = np.asarray(self.const(ins[2], "the Gemm bias"), np.float64) * float(at.get("beta", 1.0))
            if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1):
                self.fail(f"Gemm bias of shape {c.shape} is not a per-output vector")
            bias = np.broadcast_to(c.reshape(-1), (w.shape[0],))
        return [self.dense(s, w.astype(np.float32), None if bias is None else bias.astype(np.float32))]

    def _op_MatMul(self, node, ins, at):
        if not isinstance(ins[0], Stream):
            self.fail("a constant times a streamed matrix is not supported")
        s = self.stream(ins[0])
        b = np.asarray(
            self.const(ins[1], "the MatMul right operand (a streamed x streamed product)"), np.float32
        )
        if b.ndim > 2:
            if any(d != 1 for d in b.shape[:-2]):
                self.fail(f"batched MatMul with a {b.shape} operand is not supported")
            b = b.reshape(b.shape[-2:])
        if b.ndim == 1:
            out = self.dense(s, b[None, :], None)
            return [out.with_(dims=out.dims[:-1])]
        return [self.dense(s, np.ascontiguousarray(b.T), None)]

    # ------------------------------------------------------------------ normalisation
    def _op_BatchNormalization(self, node, ins, at):
        s = self.stream(ins[0])
        if at.get("training_mode", 0):
            self.fail("BatchNormalization in training mode is not supported (export in eval mode)")
        if at.get("spatial", 1) == 0:
            self.fail("BatchNormalization with spatial=0 is not supported")
        scale, bias, mean, var = (
            np.asarray(self.const(v, "BatchNormalization parameters"), np.float64) for v in ins[1:5]
        )
        eps = float(at.get("epsilon", 1e-5))
        if s.t == 1:
            self.fail("BatchNormalization over the time axis as channels is not supported")
        k = scale / np.sqrt(var + eps)
        shift = bias - mean * k
        shape = [1] * s.rank
        shape[1] = k.size
        return [self.affine(s, k.reshape(shape), shift.reshape(shape))] + [
            Bad("BatchNormalization training outputs are not supported")
        ] * (len(node.output) - 1)

    def affine(self, s: Stream, scale: np.ndarray, shift: np.ndarray) -> Stream:
        like, shapes, _ = self.broadcast([s, Const(scale), Const(shift)])
        if like.dims != s.dims:
            self.fail("normalisation parameters do not fit the input")
        return self.emit(
            "affine",
            [self.operand(s, shapes[0], s.delay)],
            {},
            {"scale": scale.reshape(shapes[1]), "shift": shift.reshape(shapes[2])},
            s,
        )

    def _op_LayerNormalization(self, node, ins, at):
        s = self.stream(ins[0])
        axis = _axis(int(at.get("axis", -1)), s.rank)
        axes = list(range(axis, s.rank))
        norm_dims = [s.dims[a] for a in axes if a != s.t]
        scale = np.broadcast_to(self.const(ins[1], "LayerNormalization scale"), norm_dims).reshape(-1)
        params = {"scale": scale}
        if len(ins) > 2 and ins[2] is not None:
            params["bias"] = np.broadcast_to(
                self.const(ins[2], "LayerNormalization bias"), norm_dims
            ).reshape(-1)
        attrs = {"n_axes": 1, "epsilon": float(at.get("epsilon", 1e-5))}
        return [self.along(s, axes, "layer_norm", attrs, params)] + [
            Bad("LayerNormalization mean/inv_std outputs are not supported")
        ] * (len(node.output) - 1)


for _onnx, _fn in _UNARY.items():
    setattr(
        FrameOps,
        "_op_" + _onnx,
        lambda self, node, ins, at, _f=_fn: self._unary(node, ins, "unary", {"fn": _f}),
    )

__all__ = ["FrameOps", "squeezed"]
