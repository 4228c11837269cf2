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


def quantize_into(fn, q: str, x: str, n: int, act_scale: float, act_bits: int, unsigned: bool = False) -> None:
    """q[0:n] = ops_q8.quantize(x[0:n]) as int8/int16; q's padding is never written (zero from reset).
    `unsigned`: store q + 128 as a byte (0..255) for the u8 x s8 dot products of VNNI."""
    inv, _ = q8_consts(act_scale, np.ones(1))
    qmax, ty = QMAX[act_bits], _qty(act_bits)
    lo, hi = f32(-qmax), f32(qmax)
    with fn.loop("0", str(n), vectorize=True, hint="q") as i:
        v = fn.fmul(fn.load_at("float", x, i), f32(inv), fast=False)
        v = fn.select(fn.fcmp("ogt", v, lo), v, lo)  # NaN -> -Q, like the interpreter
        v = fn.select(fn.fcmp("olt", v, hi), v, hi)
        v = fn.fsub(fn.fadd(v, f32(MAGIC), fast=False), f32(MAGIC), fast=False)
        qv = fn.assign(f"fptosi float {v} to {ty}")
        fn.store_at(ty, fn.assign(f"xor i8 {qv}, -128") if unsigned else qv, q, i)


VNNI_TILES = 4  # 16-row tiles per pass over x: four independent vpdpbusd chains share each broadcast


def vnni_layout(wp: np.ndarray, kp: int, tile: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kp) int8 -> per `tile`-row tile and group of 4 columns, the tile x 4 bytes one vpdpbusd
    (16 rows) or one vpmaddubsw (8 rows) reads (tile-major, then column group); and -128 * sum of
    each row (the VNNI offset's correction)."""
    rows = wp.shape[0]
    w4 = wp.reshape(rows // tile, tile, kp // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    return np.ascontiguousarray(w4), -128 * wp.astype(np.int64).sum(axis=1)


def matvec_vnni(fn, y: str, w4: str, corr: str, u: str, rows: int, kp: int, scale: str, bias: str | None) -> None:
    """y[0:rows] = float32(sum_k w[r, k] * q[k]) * scale[r] + bias[r] with AVX-512 VNNI: u = q + 128
    as bytes, vpdpbusd sums 4 products u8 x s8 per int32 lane, the accumulator starts at
    -128 * sum_k w[r, k]. Integer arithmetic (exact, wrapping) gives the same int32 sums as the
    plain loop; the float dequantisation is the same two roundings, lane by lane."""
    m = fn.module
    name = "llvm.x86.avx512.vpdpbusd.512"
    m.declare(name, f"declare <16 x i32> @{name}(<16 x i32>, <64 x i8>, <64 x i8>)")
    ntile, kg = rows // 16, kp // 4
    for g0 in range(0, ntile, VNNI_TILES):
        ts = list(range(g0, min(g0 + VNNI_TILES, ntile)))
        accs = []
        for t in ts:
            a = fn.alloca("<16 x i32>", "acc")
            c = fn.assign(f"load <16 x i32>, ptr {fn.gep('i32', corr, 16 * t)}, align 64", "c")
            fn.emit(f"store <16 x i32> {c}, ptr {a}, align 64")
            accs.append(a)
        with fn.loop("0", str(kg), hint="vnni") as j:
            xb = fn.assign(f"bitcast <16 x i32> {fn.splat('i32', 16, fn.load_at('i32', u, j, 'x'))} to <64 x i8>")
            for t, a in zip(ts, accs):
                off = fn.iop("add", fn.iop("mul", j, "64"), str(t * kg * 64))
                wv = fn.assign(f"load <64 x i8>, ptr {fn.gep('i8', w4, off, 'w')}, align 64", "w")
                av = fn.assign(f"load <16 x i32>, ptr {a}, align 64", "a")
                r = fn.assign(f"call <16 x i32> @{name}(<16 x i32> {av}, <64 x i8> {xb}, <64 x i8> {wv})", "d")
                fn.emit(f"store <16 x i32> {r}, ptr {a}, align 64")
        for t, a in zip(ts, accs):
            _dequantize_tile(fn, a, 16, t, y, scale, bias)


def _dequantize_tile(fn, acc: str, n: int, t: int, y: str, scale: str, bias: str | None) -> None:
    """y[n t : n (t + 1)] = float32(acc) * scale + bias for one tile of n int32 row sums (the same two
    roundings as the plain loop, lane by lane)."""
    vi, vf, al = f"<{n} x i32>", f"<{n} x float>", 4 * n
    av = fn.assign(f"load {vi}, ptr {acc}, align {al}", "a")
    v = fn.assign(f"sitofp {vi} {av} to {vf}")
    s = fn.assign(f"load {vf}, ptr {fn.gep('float', scale, n * t)}, align {al}")
    v = fn.assign(f"fmul {vf} {v}, {s}")
    if bias is not None:
        b = fn.assign(f"load {vf}, ptr {fn.gep('float', bias, n * t)}, align {al}")
        v = fn.assign(f"fadd {vf} {v}, {b}")
    fn.emit(f"store {vf} {v}, ptr {fn.gep('float', y, n * t)}, align {al}")


AVX2_TILES = 4  # 8-row tiles per pass over x


def matvec_avx2(fn, y: str, w4: str, q: str, rows: int, kp: int, scale: str, bias: str | None) -> None:
    """y[0:rows] = float32(sum_k w[r, k] * q[k]) * scale[r] + bias[r] with AVX2 (no VNNI): per 8-row
    tile and 4 columns, vpmaddubsw(|w|, sign(w) * q) multiplies bytes and adds pairs into int16,
    vpmaddwd by ones adds those pairs into the row's int32 lane. |w| <= 127 and |q| <= 127, so a
    pair is at most 2 * 127 * 127 = 32258 < 2^15: vpmaddubsw never saturates and the int32 sums
    are exact (the same as the plain loop and the interpreter)."""
    m = fn.module
    sign, mul, madd, absb = ("llvm.x86.avx2.psign.b", "llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd",
                             "llvm.abs.v32i8")
    m.declare(sign, f"declare <32 x i8> @{sign}(<32 x i8>, <32 x i8>)")
    m.declare(mul, f"declare <16 x i16> @{mul}(<32 x i8>, <32 x i8>)")
    m.declare(madd, f"declare <8 x i32> @{madd}(<16 x i16>, <16 x i16>)")
    m.declare(absb, f"declare <32 x i8> @{absb}(<32 x i8>, i1)")
    ones = "<" + ", ".join(["i16 1"] * 16) + ">"
    ntile, kg = rows // 8, kp // 4
    for g0 in range(0, ntile, AVX2_TILES):
        ts = list(range(g0, min(g0 + AVX2_TILES, ntile)))
        accs = []
        for _ in ts:
            a = fn.alloca("<8 x i32>", "acc")
            fn.emit(f"store <8 x i32> zeroinitializer, ptr {a}, align 32")
            accs.append(a)
        with fn.loop("0", str(kg), hint="avx2") as j:
            xb = fn.assign(f"bitcast <8 x i32> {fn.splat('i32', 8, fn.load_at('i32', q, j, 'x'))} to <32 x i8>")
            for t, a in zip(ts, accs):
                off = fn.iop("add", fn.iop("mul", j, "32"), str(t * kg * 32))
                wv = fn.assign(f"load <32 x i8>, ptr {fn.gep('i8', w4, off, 'w')}, align 32", "w")
                aw = fn.assign(f"call <32 x i8> @{absb}(<32 x i8> {wv}, i1 false)", "aw")
                sx = fn.assign(f"call <32 x i8> @{sign}(<32 x i8> {xb}, <32 x i8> {wv})", "sx")
                p16 = fn.assign(f"call <16 x i16> @{mul}(<32 x i8> {aw}, <32 x i8> {sx})", "p")
                p32 = fn.assign(f"call <8 x i32> @{madd}(<16 x i16> {p16}, <16 x i16> {ones})", "p")
                av = fn.assign(f"load <8 x i32>, ptr {a}, align 32", "a")
                fn.emit(f"store <8 x i32> {fn.iop('add', av, p32, '<8 x i32>')}, ptr {a}, align 32")
        for t, a in zip(ts, accs):
            _dequantize_tile(fn, a, 8, t, y, scale, bias)


def emit_matvec_q8(k: Kernel, y: str, tag: str, wp: np.ndarray, kp: int, q: str, x: str, n: int,
                   act_scale: float, act_bits: int, scale: str, bias: str | None) -> None:
    """Quantize x[0:n] into q, then y = dequantised W @ q: with 8-bit activations VNNI tiles where
    the target has AVX-512 VNNI, AVX2 tiles (vpmaddubsw + vpmaddwd) where it has AVX2, else one
    vectorised dot-product loop per row."""
    fn, m = k.fn, k.m
    if act_bits == 8 and kernels.has_vnni(k.options):
        k4 = pad(n, 4)  # vpdpbusd reads 4 columns per lane: the 32-column padding would be zeros read
        w4, corr = vnni_layout(np.ascontiguousarray(wp[:, :k4]), k4)
        quantize_into(fn, q, x, n, act_scale, act_bits, unsigned=True)
        matvec_vnni(fn, y, m.const_array(tag + "_w4", w4, "i8"), m.const_array(tag + "_c", corr, "i32"), q,
                    wp.shape[0], k4, scale, bias)
        return
    if act_bits == 8 and kernels.has_avx2(k.options):
        k4 = pad(n, 4)
        w4, _ = vnni_layout(np.ascontiguousarray(wp[:, :k4]), k4, tile=8)
        quantize_into(fn, q, x, n, act_scale, act_bits)
        matvec_avx2(fn, y, m.const_array(tag + "_w8", w4, "i8"), q, wp.shape[0], k4, scale, bias)
        return
    quantize_into(fn, q, x, n, act_scale, act_bits)
    matvec_q8(fn, y, m.const_array(tag + "_w", wp, "i8"), q, wp.shape[0], kp, act_bits, scale, bias, k.r["dot"])


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
        node, m = k.node, k.m
        w = np.asarray(node.params["weight"])
        if w.ndim != 2 or w.shape[1] != k.in_size:
            raise ValueError(f"weight shape {w.shape} does not fit input size {k.in_size}")
        wp, kp = padded_q8(w)
        sg = m.const_array(f"dq8_{node.id}_s", _scale_vec(node.attrs["x_scale"], node.params["w_scale"], 1))
        bg = None
        if "bias" in node.params:
            bg = m.const_array(f"dq8_{node.id}_b", kernels.padded_vec(np.asarray(node.params["bias"])))
        emit_matvec_q8(k, k.out, f"dq8_{node.id}", wp, kp, k.r["q"], k.ins[0], k.in_size, node.attrs["x_scale"],
                       bits(node), sg, bg)


class _RecurrentQ8:
    """gru_q8 / lstm_q8: the float GRU/LSTM lowering with its two projections in int8."""

    fused = False  # x and h have their own activation scales: two integer dot products

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
        sg = m.const_array(tag + "_s", _scale_vec(node.attrs[scale_key], ws, blocks))
        bg = m.const_array(tag + "_b", kernels.padded_vec(b, blocks))
        emit_matvec_q8(k, dst, tag, wp, kp, k.r["qx" if inp else "qh"], src, src_size, node.attrs[scale_key],
                       bits(node, act), sg, bg)


@lowering("gru_q8")
class GruQ8(_RecurrentQ8, Gru):
    pass


@lowering("lstm_q8")
class LstmQ8(_RecurrentQ8, Lstm):
    pass
