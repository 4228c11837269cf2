"""Lowering of the int8 ops (core.graph.ops_q8): dense_q8, gru_q8, lstm_q8.

The arithmetic is the interpreter's, operation for operation (see core.graph.ops_q8): quantize
with a float32 multiply, two selects and the 1.5 * 2^23 add/subtract (no fast-math flags, so
nothing fuses or folds), exact int32 dot products, dequantize with a float32 multiply and add.
The integer parts are exact in any order, so the dot products vectorise freely.

Layout: int8 weights row-major (rows padded per gate to 16, columns padded to KPAD with zeros);
the quantized input lives in a context scratch of int8 (or int16) padded the same way, so each
row's dot product is one loop over KPAD-multiples with no remainder: LLVM turns it into
pmaddwd / vpdpwssd on x86 and smlal / sdot on ARM, plain multiply-adds on cores without SIMD.
"""

from __future__ import annotations

import numpy as np

from core.compiler import kernels
from core.compiler.emitter import f32
from core.compiler.lower import Kernel, OpLowering, Region, lowering, pad
from core.compiler.lower_nn import Gru, Lstm
from core.graph.ops_q8 import MAGIC, QMAX, bits, q8_consts

KPAD = 32  # int8 columns per padded row: one 256-bit vector of bytes


def _qty(b: int) -> str:
    return "i8" if b == 8 else "i16"


def quantize_into(fn, q: str, x: str, n: int, act_scale: float, act_bits: int) -> None:
    """q[0:n] = ops_q8.quantize(x[0:n]) as int8/int16; q's padding is never written (zero from reset)."""
    inv, _ = q8_consts(act_scale, np.ones(1))
    qmax, ty = QMAX[act_bits], _qty(act_bits)
    lo, hi = f32(-qmax), f32(qmax)
    with fn.loop("0", str(n), vectorize=True, hint="q") as i:
        v = fn.fmul(fn.load_at("float", x, i), f32(inv), fast=False)
        v = fn.select(fn.fcmp("ogt", v, lo), v, lo)  # NaN -> -Q, like the interpreter
        v = fn.select(fn.fcmp("olt", v, hi), v, hi)
        v = fn.fsub(fn.fadd(v, f32(MAGIC), fast=False), f32(MAGIC), fast=False)
        fn.store_at(ty, fn.assign(f"fptosi float {v} to {ty}"), q, i)


def matvec_q8(fn, y: str, w: str, q: str, rows: int, kp: int, act_bits: int, scale: str, bias: str | None,
              dot: str) -> None:
    """y[r] = float32(sum_k w[r, k] * q[k]) * scale[r] + bias[r] for r < rows; `dot` is an i32 scratch."""
    qt = _qty(act_bits)
    with fn.loop("0", str(rows), hint="row") as r:
        row = fn.gep("i8", w, fn.iop("mul", r, str(kp)), "w")
        fn.store("i32", "0", dot)
        with fn.loop("0", str(kp), vectorize=True, hint="dot") as j:
            a = fn.assign(f"sext i8 {fn.load_at('i8', row, j, 'w')} to i32")
            b = fn.assign(f"sext {qt} {fn.load_at(qt, q, j, 'x')} to i32")
            fn.store("i32", fn.iop("add", fn.load("i32", dot), fn.iop("mul nsw", a, b)), dot)
        acc = fn.assign(f"sitofp i32 {fn.load('i32', dot)} to float")
        v = fn.fmul(acc, fn.load_at("float", scale, r), fast=False)
        if bias is not None:
            v = fn.fadd(v, fn.load_at("float", bias, r), fast=False)
        fn.store_at("float", v, y, r)


def padded_q8(w: np.ndarray, blocks: int = 1) -> tuple[np.ndarray, int]:
    """(M, K) int8 -> (blocks * pad(M / blocks), KPAD-padded K), zeros in the padding; and that K."""
    wp, _ = kernels.padded_rows(np.asarray(w), blocks, np.int8)
    kp = pad(w.shape[1], KPAD)
    out = np.zeros((wp.shape[0], kp), np.int8)
    out[:, : w.shape[1]] = wp
    return out, kp


def _scale_vec(act_scale: float, w_scale: np.ndarray, blocks: int) -> np.ndarray:
    _, scale = q8_consts(act_scale, w_scale)
    return kernels.padded_vec(scale, blocks)


@lowering("dense_q8")
class DenseQ8(OpLowering):
    def regions(self, node, in_shapes, out_shape):
        k = int(np.prod(in_shapes[0]))
        return [Region("q", _qty(bits(node)), pad(k, KPAD)), Region("dot", "i32", 1)]

    def emit(self, k: Kernel) -> None:
        node, fn, m = k.node, k.fn, k.m
        w = np.asarray(node.params["weight"])
        if w.ndim != 2 or w.shape[1] != k.in_size:
            raise ValueError(f"weight shape {w.shape} does not fit input size {k.in_size}")
        wp, kp = padded_q8(w)
        wg = m.const_array(f"dq8_{node.id}_w", wp, "i8")
        sg = m.const_array(f"dq8_{node.id}_s", _scale_vec(node.attrs["x_scale"], node.params["w_scale"], 1))
        bg = None
        if "bias" in node.params:
            bg = m.const_array(f"dq8_{node.id}_b", kernels.padded_vec(np.asarray(node.params["bias"])))
        quantize_into(fn, k.r["q"], k.ins[0], k.in_size, node.attrs["x_scale"], bits(node))
        matvec_q8(fn, k.out, wg, k.r["q"], wp.shape[0], kp, bits(node), sg, bg, k.r["dot"])


class _RecurrentQ8:
    """gru_q8 / lstm_q8: the float GRU/LSTM lowering with its two projections in int8."""

    def _check(self, node, in_size):
        super()._check(node, in_size)
        bits(node), bits(node, "h_bits")

    def regions(self, node, in_shapes, out_shape):
        regs = [r for r in super().regions(node, in_shapes, out_shape) if r.name != "acc"]
        k = int(np.prod(in_shapes[0]))
        hid = self._hid(node)
        return regs + [Region("qx", _qty(bits(node)), pad(k, KPAD)),
                       Region("qh", _qty(bits(node, "h_bits")), pad(hid, KPAD)), Region("dot", "i32", 1)]

    def _project(self, k: Kernel, dst: str, key: str, src: str, src_size: int, rows: slice | None = None,
                 blocks: int | None = None) -> None:
        node, m = k.node, k.m
        blocks = blocks or self.gates
        inp = key == "w_ih"
        scale_key, act = ("x_scale", "x_bits") if inp else ("h_scale", "h_bits")
        w = np.asarray(node.params[key])
        ws = np.asarray(node.params[f"{key}_scale"])
        b = np.asarray(node.params["b_ih" if inp else "b_hh"], np.float32)
        if rows is not None:
            w, ws, b = w[rows], ws[rows], b[rows]
        wp, kp = padded_q8(w, blocks)
        tag = f"{node.op}_{node.id}_{key}_{rows.start if rows else 0}"
        wg = m.const_array(tag + "_w", wp, "i8")
        sg = m.const_array(tag + "_s", _scale_vec(node.attrs[scale_key], ws, blocks))
        bg = m.const_array(tag + "_b", kernels.padded_vec(b, blocks))
        q = k.r["qx" if inp else "qh"]
        quantize_into(k.fn, q, src, src_size, node.attrs[scale_key], bits(node, act))
        matvec_q8(k.fn, dst, wg, q, wp.shape[0], kp, bits(node, act), sg, bg, k.r["dot"])


@lowering("gru_q8")
class GruQ8(_RecurrentQ8, Gru):
    pass


@lowering("lstm_q8")
class LstmQ8(_RecurrentQ8, Lstm):
    pass
