"""Lowering of the imported-model ops of core/graph/ops_nn.py that work within one frame:
layout (reshape, transpose, concat, slice, gather, pad: index tables computed here once),
element-wise (leaky_relu, hard_sigmoid, clip, affine), dense_nd, reduce and layer_norm.

Precision follows the reference: reduce and layer_norm in float64, matmuls accumulated in float64
and rounded once before the float32 bias add.
"""

from __future__ import annotations

import numpy as np

from core.compiler import kernels
from core.compiler.emitter import Function, lit
from core.compiler.lower import Kernel, OpLowering, Region, lowering, pad
from core.graph import ops_nn


def _idx(shape) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)


def gather_table(fn: Function, k: Kernel, src: str, table: np.ndarray, fill: float = 0.0) -> None:
    """out[i] = src[table[i]] (table[i] < 0: fill); an identity table becomes a copy."""
    table = np.asarray(table, np.int64).reshape(-1)
    n = len(table)
    if n and np.array_equal(table, np.arange(n)):
        fn.memcpy(k.out, src, 4 * n)
        return
    if n and (table >= 0).all() and np.array_equal(np.diff(table), np.ones(n - 1, np.int64)):
        fn.memcpy(k.out, fn.gep("float", src, int(table[0])), 4 * n)
        return
    t = k.m.const_array(f"idx_{k.node.id}", table, "i32")
    with fn.loop("0", str(n), vectorize=True, hint="gather") as i:
        j = fn.load_at("i32", t, i, "j")
        if (table < 0).any():
            ok = fn.icmp("sge", j, "0")
            jj = fn.select(ok, j, "0", "i32")
            v = fn.select(ok, fn.load_at("float", src, jj), lit(fill, "float"))
        else:
            v = fn.load_at("float", src, j)
        fn.store_at("float", v, k.out, i)


@lowering("reshape")
class Reshape(OpLowering):
    out_alias = "input0"  # row-major per-frame data: no movement
    emits = False


@lowering("transpose")
class Transpose(OpLowering):
    def emit(self, k: Kernel) -> None:
        perm = [int(p) for p in k.node.attrs["perm"]]
        gather_table(k.fn, k, k.ins[0], _idx(k.in_shapes[0]).transpose(perm))


@lowering("slice")
class Slice(OpLowering):
    def emit(self, k: Kernel) -> None:
        shape = k.in_shapes[0]
        gather_table(k.fn, k, k.ins[0], _idx(shape)[ops_nn._slices(k.node, shape)])


@lowering("gather")
class Gather(OpLowering):
    def emit(self, k: Kernel) -> None:
        idx = [int(i) for i in k.node.attrs["indices"]]
        gather_table(k.fn, k, k.ins[0], np.take(_idx(k.in_shapes[0]), idx, axis=int(k.node.attrs["axis"])))


@lowering("pad")
class Pad(OpLowering):
    def emit(self, k: Kernel) -> None:
        pads = [(int(b), int(e)) for b, e in k.node.attrs["pads"]]
        table = np.pad(_idx(k.in_shapes[0]), pads, constant_values=-1)
        gather_table(k.fn, k, k.ins[0], table, float(k.node.attrs.get("value", 0.0)))


@lowering("concat")
class Concat(OpLowering):
    def emit(self, k: Kernel) -> None:
        fn = k.fn
        axis = int(k.node.attrs["axis"])
        which = np.concatenate([np.full(s, j) for j, s in enumerate(k.in_shapes)], axis=axis).reshape(-1)
        src = np.concatenate([_idx(s) for s in k.in_shapes], axis=axis).reshape(-1)
        for j in range(len(k.ins)):
            dst = np.nonzero(which == j)[0]
            if len(dst) == 0:
                continue
            s = src[dst]
            if np.array_equal(s, np.arange(len(s))) and np.array_equal(dst, dst[0] + np.arange(len(dst))):
                fn.memcpy(fn.gep("float", k.out, int(dst[0])), k.ins[j], 4 * len(dst))
                continue
            td = k.m.const_array(f"cat_dst_{k.node.id}_{j}", dst, "i32")
            ts = k.m.const_array(f"cat_src_{k.node.id}_{j}", s, "i32")
            with fn.loop("0", str(len(dst)), hint="cat") as i:
                v = fn.load_at("float", k.ins[j], fn.load_at("i32", ts, i))
                fn.store_at("float", v, k.out, fn.load_at("i32", td, i))


# ------------------------------------------------------------------------------ element-wise
class _Elementwise(OpLowering):
    def emit(self, k: Kernel) -> None:
        fn = k.fn
        with fn.loop("0", str(k.out_size), vectorize=True) as i:
            fn.store_at("float", self.f(fn, k, fn.load_at("float", k.ins[0], i), i), k.out, i)

    def f(self, fn: Function, k: Kernel, x: str, i: str) -> str:
        raise NotImplementedError


def _clip(fn: Function, v: str, lo: float | None, hi: float | None) -> str:
    """np.clip: max then min, NaN stays NaN."""
    if lo is not None:
        v = fn.select(fn.fcmp("olt", v, lit(lo, "float")), lit(lo, "float"), v)
    if hi is not None:
        v = fn.select(fn.fcmp("ogt", v, lit(hi, "float")), lit(hi, "float"), v)
    return v


@lowering("leaky_relu")
class LeakyRelu(_Elementwise):
    def f(self, fn, k, x, i):
        ax = fn.fmul(lit(float(k.node.attrs.get("alpha", 0.01)), "float"), x, fast=False)
        return fn.select(fn.fcmp("oge", x, lit(0.0, "float")), x, ax)


@lowering("hard_sigmoid")
class HardSigmoid(_Elementwise):
    def f(self, fn, k, x, i):
        a, b = float(k.node.attrs.get("alpha", 0.2)), float(k.node.attrs.get("beta", 0.5))
        v = fn.fadd(fn.fmul(lit(a, "float"), x, fast=False), lit(b, "float"), fast=False)
        return _clip(fn, v, 0.0, 1.0)


@lowering("clip")
class Clip(_Elementwise):
    def f(self, fn, k, x, i):
        lo, hi = k.node.attrs.get("min"), k.node.attrs.get("max")
        return _clip(fn, x, None if lo is None else float(lo), None if hi is None else float(hi))


@lowering("affine")
class Affine(OpLowering):
    """x * scale + shift with numpy broadcasting (tables when the input itself broadcasts)."""

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        shape = tuple(k.out_shape)
        scale = np.broadcast_to(np.asarray(k.node.params["scale"], np.float32), shape).reshape(-1)
        shift = np.broadcast_to(np.asarray(k.node.params["shift"], np.float32), shape).reshape(-1)
        gs, gt = k.m.const_array(f"scale_{k.node.id}", scale), k.m.const_array(f"shift_{k.node.id}", shift)
        same = tuple(k.in_shapes[0]) == shape
        table = (
            None
            if same
            else k.m.const_array(f"bcast_{k.node.id}", np.broadcast_to(_idx(k.in_shapes[0]), shape).reshape(-1), "i32")
        )
        with fn.loop("0", str(k.out_size), vectorize=True) as i:
            j = i if same else fn.load_at("i32", table, i)
            v = fn.fmul(fn.load_at("float", k.ins[0], j), fn.load_at("float", gs, i), fast=False)
            fn.store_at("float", fn.fadd(v, fn.load_at("float", gt, i), fast=False), k.out, i)


@lowering("dense_nd")
class DenseNd(OpLowering):
    """`dense` on the last per-frame axis, row by row."""

    def regions(self, node, in_shapes, out_shape):
        mp = pad(int(np.shape(node.params["weight"])[0]))
        return [Region("acc", "double", mp)]

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        w = np.asarray(k.node.params["weight"], np.float32)
        n_out, n_in = w.shape
        rows = k.in_size // n_in
        wp, mp = kernels.padded_rows(w)
        wt = kernels.gemv_weights(k.m, f"dense_{k.node.id}_w", wp)
        bias = None
        if "bias" in k.node.params:
            bias = k.m.const_array(f"dense_{k.node.id}_b", kernels.padded_vec(np.asarray(k.node.params["bias"])))
        for r in range(rows):  # rows are few (a frame's leading axes); each is one fused GEMV
            kernels.gemv(
                fn,
                fn.gep("float", k.out, r * n_out),
                wt,
                fn.gep("float", k.ins[0], r * n_in),
                n_in,
                mp,
                bias,
                k.r["acc"],
                n_store=n_out,
            )


@lowering("reduce")
class Reduce(OpLowering):
    """mean / sum / max / min over per-frame axes, in float64 like the reference."""

    def regions(self, node, in_shapes, out_shape):
        if node.attrs.get("kind", "mean") not in ("mean", "sum", "max", "min"):
            raise ValueError(f"unknown reduction {node.attrs.get('kind')!r}")
        return [Region("acc", "double", 1)]

    def emit(self, k: Kernel) -> None:
        fn, d = k.fn, "double"
        kind = k.node.attrs.get("kind", "mean")
        shape = k.in_shapes[0]
        axes = sorted({int(a) for a in k.node.attrs["axes"]})
        keep = [a for a in range(len(shape)) if a not in axes]
        idx = _idx(shape).transpose(keep + axes).reshape(k.out_size, -1)  # (n_out, n_reduced)
        n_red = idx.shape[1]
        t = k.m.const_array(f"red_{k.node.id}", idx, "i32")
        acc = k.r["acc"]
        with fn.loop("0", str(k.out_size), hint="out") as o:
            base = fn.iop("mul", o, str(n_red))
            first = fn.assign(f"fpext float {fn.load_at('float', k.ins[0], fn.load_at('i32', t, base))} to double")
            fn.store(d, first if kind in ("max", "min") else lit(0.0, d), acc)
            with fn.loop("0" if kind in ("mean", "sum") else "1", str(n_red), hint="red") as r:
                j = fn.load_at("i32", t, fn.iop("add", base, r))
                v = fn.assign(f"fpext float {fn.load_at('float', k.ins[0], j)} to double")
                cur = fn.load(d, acc)
                if kind in ("mean", "sum"):
                    new = fn.fadd(cur, v, d, fast=False)
                else:
                    better = fn.fcmp("ogt" if kind == "max" else "olt", v, cur, d)
                    new = fn.select(better, v, cur, d)
                    new = fn.select(fn.fcmp("uno", v, cur, d), fn.fadd(v, cur, d, fast=False), new, d)
                fn.store(d, new, acc)
            res = fn.load(d, acc)
            if kind == "mean":
                res = fn.fdiv(res, lit(float(n_red), d), d, fast=False)
            fn.store_at("float", fn.assign(f"fptrunc double {res} to float"), k.out, o)


@lowering("layer_norm")
class LayerNorm(OpLowering):
    """(x - mean) / sqrt(var + eps) * scale + bias over the last n_axes, in float64."""

    def regions(self, node, in_shapes, out_shape):
        return [Region("acc", "double", 2)]

    def emit(self, k: Kernel) -> None:
        fn, d = k.fn, "double"
        shape = tuple(k.in_shapes[0])
        n_axes = int(k.node.attrs["n_axes"])
        group = int(np.prod(shape[len(shape) - n_axes :]))
        rows = k.in_size // group
        scale = np.broadcast_to(np.asarray(k.node.params["scale"], np.float32), shape).reshape(-1)
        bias = np.broadcast_to(np.asarray(k.node.params.get("bias", np.zeros(1)), np.float32), shape).reshape(-1)
        gs, gb = (
            k.m.const_array(f"ln_scale_{k.node.id}", scale, d),
            k.m.const_array(f"ln_bias_{k.node.id}", bias, d),
        )
        eps = lit(float(k.node.attrs.get("epsilon", 1e-5)), d)
        mean_p, var_p = k.r["acc"], fn.gep(d, k.r["acc"], 1)
        n = lit(float(group), d)
        with fn.loop("0", str(rows), hint="row") as r:
            base = fn.iop("mul", r, str(group))
            x = fn.gep("float", k.ins[0], base)
            fn.store(d, lit(0.0, d), mean_p)
            with fn.loop("0", str(group), hint="sum") as i:
                v = fn.assign(f"fpext float {fn.load_at('float', x, i)} to double")
                fn.store(d, fn.fadd(fn.load(d, mean_p), v, d, fast="reduce"), mean_p)
            mu = fn.fdiv(fn.load(d, mean_p), n, d, fast=False)
            fn.store(d, lit(0.0, d), var_p)
            with fn.loop("0", str(group), hint="var") as i:
                dv = fn.fsub(fn.assign(f"fpext float {fn.load_at('float', x, i)} to double"), mu, d, fast=False)
                fn.store(d, fn.fadd(fn.load(d, var_p), fn.fmul(dv, dv, d, fast=False), d, fast="reduce"), var_p)
            var = fn.fdiv(fn.load(d, var_p), n, d, fast=False)
            sd = fn.intrinsic("sqrt", d, [fn.fadd(var, eps, d, fast=False)])
            with fn.loop("0", str(group), hint="norm") as i:
                j = fn.iop("add", base, i)
                dv = fn.fsub(fn.assign(f"fpext float {fn.load_at('float', x, i)} to double"), mu, d, fast=False)
                y = fn.fmul(fn.fdiv(dv, sd, d, fast=False), fn.load_at(d, gs, j), d, fast=False)
                y = fn.fadd(y, fn.load_at(d, gb, j), d, fast=False)
                fn.store_at("float", fn.assign(f"fptrunc double {y} to float"), k.out, j)
