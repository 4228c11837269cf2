"""Reusable IR kernels: element-wise functions and the fused GEMV.

GEMV layout: the weight matrix W (M, K) is stored transposed and padded, Wt (K, Mp) with Mp a
multiple of 16 floats, so y[0:Mp] += Wt[k, :] * x[k] streams contiguous rows; K is processed in
blocks of `block` columns, each block reading and writing y once (register blocking), and the
inner loop over the Mp outputs vectorises. Summation runs over k in order.
"""

from __future__ import annotations

import numpy as np

from core.compiler import mathlib
from core.compiler.emitter import Function, Module, f32
from core.compiler.lower import pad

GEMV_BLOCK = 8


def unary(fn: Function, name: str, x: str) -> str:
    """Float32 f(x) for the graph's unary functions (numpy semantics, float32 arithmetic)."""
    m = fn.module
    if name == "log":
        return fn.call("float", mathlib.use(m, "log"), [("float", x)])
    if name == "exp":
        return fn.call("float", mathlib.use(m, "exp"), [("float", x)])
    if name == "tanh":
        return fn.call("float", mathlib.use(m, "tanh"), [("float", x)])
    if name == "sigmoid":
        return fn.call("float", mathlib.use(m, "sigmoid"), [("float", x)])
    if name == "sqrt":
        return fn.intrinsic("sqrt", "float", [x])
    if name == "abs":
        return fn.intrinsic("fabs", "float", [x])
    if name == "neg":
        return fn.assign(f"fneg float {x}")
    if name == "square":
        return fn.fmul(x, x, fast=False)
    if name == "relu":  # np.maximum(x, 0): NaN stays NaN
        return fn.select(fn.fcmp("ugt", x, f32(0.0)), x, f32(0.0))
    if name == "hard_sigmoid":  # np.clip(0.2 * x + 0.5, 0, 1), two roundings like numpy
        v = fn.fadd(fn.fmul(x, f32(0.2), fast=False), f32(0.5), fast=False)
        v = fn.select(fn.fcmp("olt", v, f32(0.0)), f32(0.0), v)
        return fn.select(fn.fcmp("ogt", v, f32(1.0)), f32(1.0), v)
    raise ValueError(f"unknown unary function {name!r}")


UNARY_NAMES = ("log", "exp", "tanh", "sigmoid", "sqrt", "abs", "neg", "square", "relu", "hard_sigmoid")


def binary(fn: Function, name: str, a: str, b: str) -> str:
    if name == "add":
        return fn.fadd(a, b)
    if name == "sub":
        return fn.fsub(a, b)
    if name == "mul":
        return fn.fmul(a, b)
    if name == "div":
        return fn.fdiv(a, b, fast=False)
    if name in ("max", "min"):  # np.maximum / np.minimum: NaN propagates
        c = fn.fcmp("ogt" if name == "max" else "olt", a, b)
        r = fn.select(c, a, b)
        return fn.select(fn.fcmp("uno", a, b), fn.fadd(a, b, fast=False), r)
    raise ValueError(f"unknown binary function {name!r}")


BINARY_NAMES = ("add", "sub", "mul", "div", "max", "min")


def padded_rows(w: np.ndarray, blocks: int = 1, dtype=np.float32) -> tuple[np.ndarray, int]:
    """(M, K) -> (blocks * pad(M / blocks), K): each of `blocks` row groups padded to 16 rows."""
    rows = w.shape[0] // blocks
    mp = pad(rows)
    out = np.zeros((blocks * mp, w.shape[1]), dtype)
    for b in range(blocks):
        out[b * mp : b * mp + rows] = w[b * rows : (b + 1) * rows]
    return out, mp


def padded_vec(v: np.ndarray, blocks: int = 1) -> np.ndarray:
    rows = v.shape[0] // blocks
    mp = pad(rows)
    out = np.zeros(blocks * mp, np.float32)
    for b in range(blocks):
        out[b * mp : b * mp + rows] = v[b * rows : (b + 1) * rows]
    return out


# ---------------------------------------------------------------------------- target facts
def simd_floats(options: dict | None) -> int:
    """float32 lanes of one vector register of the lowering's target (options["target"]): 16 with
    AVX-512, 8 with AVX/AVX2, 4 with SSE / NEON / aarch64, 1 without SIMD (pi0, Cortex-M). Without a
    target (plain `lower()`): 8."""
    t = (options or {}).get("target")
    if t is None:
        return 8
    feats = t.feature_set
    if t.arch in ("x86_64", "i386", "i686"):
        return 16 if "+avx512f" in feats else 8 if ("+avx2" in feats or "+avx" in feats) else 4
    return 4 if t.has_simd and not t.is_bare_metal else 1


def has_vnni(options: dict | None) -> bool:
    """AVX-512 VNNI (vpdpbusd: u8 x s8 dot products of 4 into int32 lanes) on the target."""
    t = (options or {}).get("target")
    feats = t.feature_set if t is not None else frozenset()
    return {"+avx512vnni", "+avx512bw", "+avx512f"} <= feats


def has_avx2(options: dict | None) -> bool:
    """AVX2 (vpmaddubsw / vpmaddwd / vpsignb on 256-bit registers) on an x86 target."""
    t = (options or {}).get("target")
    return t is not None and t.arch in ("x86_64", "i386", "i686") and "+avx2" in t.feature_set


# ---------------------------------------------------------------------------- tiled float GEMV
def tiles(mp: int, tile: int) -> list[tuple[int, int]]:
    """(start, width) of the output tiles over mp rows (mp and tile multiples of 16)."""
    out, s = [], 0
    while s < mp:
        w = min(tile, mp - s)
        out.append((s, w))
        s += w
    return out


def tile_width(options: dict | None) -> int:
    """Outputs per register tile: 8 vector registers of accumulators (16 floats without SIMD)."""
    return max(16, 8 * simd_floats(options))


def weight_type(options: dict | None) -> str:
    """Element type of the dense and recurrent weight matrices: "half" with options["weights"] ==
    "fp16" (half the bytes to stream per frame; each weight widened to float32 as it is loaded, all
    arithmetic float32), else "float"."""
    w = (options or {}).get("weights", "fp32")
    if w not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}, got {w!r}")
    return "half" if w == "fp16" else "float"


WEIGHT_FORMATS = ("fp32", "fp16")
MATVEC_WEIGHTS = {"dense": ("weight",), "gru": ("w_ih", "w_hh"), "lstm": ("w_ih", "w_hh")}


def round_weights_fp16(graph):
    """The graph with every matvec weight (MATVEC_WEIGHTS) rounded to the nearest float16: what code
    compiled with options["weights"] = "fp16" computes, to the bit (fp16 -> fp32 is exact)."""
    g = graph.copy()
    for n in g.nodes:
        for key in MATVEC_WEIGHTS.get(n.op, ()):
            if key in n.params:
                n.params[key] = np.asarray(n.params[key], np.float32).astype(np.float16).astype(np.float32)
    return g


def tiled_weights(m: Module, hint: str, w_padded: np.ndarray, tile: int, ty: str = "float") -> str:
    """(Mp, K) -> per output tile (start, width), the tile's (K, width) block, tiles one after the
    other: tile t starts at element start * K and streams contiguously over k."""
    k = w_padded.shape[1]
    parts = [np.ascontiguousarray(w_padded[s : s + w].T).reshape(-1) for s, w in tiles(w_padded.shape[0], tile)]
    return m.const_array(hint, np.concatenate(parts) if k else np.zeros(0, np.float32), ty)


def matvec(
    fn: Function, y: str, mp: int, sources: list[tuple[str, str, int]], bias: str | None, tile: int,
    wty: str = "float",
) -> None:
    """y[0:mp] = bias + sum over sources (W, x, K) of W @ x[0:K], W laid out by `tiled_weights`.

    Each output tile of `tile` floats is a vector accumulator held in registers while the tile's
    weights stream by once, contiguously: per k one vector load of weights per register, one
    broadcast of x[k], one fused multiply-add (llvm.fmuladd: FMA where the CPU has it). The sum for
    each output runs over k in order, source after source, starting from the bias: a float32
    dot product in one fixed order (within the float32 error bound of numpy's `x @ W.T + b`).
    `wty="half"`: the weights are float16 (`tiled_weights(..., "half")`), widened exactly on load.
    """
    m = fn.module
    v = min(16, max(4, tile // 8))  # lanes per accumulator: one register (power of two, divides 16)
    vt, al = f"<{v} x float>", 4 * v
    name = f"llvm.fmuladd.v{v}f32"
    m.declare(name, f"declare {vt} @{name}({vt}, {vt}, {vt})")
    for s, w in tiles(mp, tile):
        accs = []
        for j in range(w // v):
            acc = fn.alloca(vt, "acc")
            init = "zeroinitializer"
            if bias is not None:
                init = fn.assign(f"load {vt}, ptr {fn.gep('float', bias, s + j * v)}, align {al}", "b")
            fn.emit(f"store {vt} {init}, ptr {acc}, align {al}")
            accs.append(acc)
        for wg, x, k_size in sources:
            base = fn.gep(wty, wg, s * k_size, "wt")
            with fn.loop("0", str(k_size), hint="mv") as k:
                xs = fn.splat("float", v, fn.load_at("float", x, k, "x"))
                row = fn.gep(wty, base, fn.iop("mul", k, str(w)), "w")
                for j, acc in enumerate(accs):
                    if wty == "half":
                        hv = fn.assign(f"load <{v} x half>, ptr {fn.gep('half', row, j * v)}, align {2 * v}", "wh")
                        wv = fn.assign(f"fpext <{v} x half> {hv} to {vt}", "w")
                    else:
                        wv = fn.assign(f"load {vt}, ptr {fn.gep('float', row, j * v)}, align {al}", "w")
                    a = fn.assign(f"load {vt}, ptr {acc}, align {al}", "acc")
                    r = fn.assign(f"call {vt} @{name}({vt} {wv}, {vt} {xs}, {vt} {a})", "fma")
                    fn.emit(f"store {vt} {r}, ptr {acc}, align {al}")
        for j, acc in enumerate(accs):
            out = fn.assign(f"load {vt}, ptr {acc}, align {al}")
            fn.emit(f"store {vt} {out}, ptr {fn.gep('float', y, s + j * v)}, align {al}")


def gemv_weights(m: Module, hint: str, w_padded: np.ndarray, ty: str = "float") -> str:
    """Store (Mp, K) weights transposed, (K, Mp), as a global."""
    return m.const_array(hint, np.ascontiguousarray(w_padded.T), ty)


def gemv(
    fn: Function,
    y: str,
    wt: str,
    x: str,
    k_size: int,
    mp: int,
    bias: str | None = None,
    acc64: str | None = None,
    block: int = GEMV_BLOCK,
    wty: str = "float",
    n_store: int | None = None,
) -> None:
    """y[0:mp] = (sum_k Wt[k, :] * x[k]) + bias (bias None: no bias).

    With `acc64` (a scratch of mp doubles) the sum is accumulated in float64 from exact products
    and rounded once, then the bias is added in float32: numpy's `x @ W.T + b` up to the last
    bit of the matmul. Without it, float32 accumulation (pairwise within each block of columns).
    `wty="double"`: float64 weights (with acc64), all arithmetic in float64. `n_store` (with
    acc64): write only the first n_store outputs (y is then not padded).
    """
    ty = "double" if acc64 else "float"
    acc = acc64 or y
    if bias is not None and not acc64:
        fn.memcpy(y, bias, 4 * mp)
    else:
        fn.memset0(acc, str((8 if acc64 else 4) * mp))
    kb = (k_size // block) * block
    if kb:
        with fn.loop("0", str(kb), step=block, hint="kb") as k0:
            _gemv_block(fn, acc, wt, x, k0, block, mp, ty, wty)
    for k in range(kb, k_size):
        _gemv_block(fn, acc, wt, x, str(k), 1, mp, ty, wty)
    if acc64:
        with fn.loop("0", str(n_store or mp), vectorize=True, hint="gvr") as i:
            v = fn.assign(f"fptrunc double {fn.load_at('double', acc64, i)} to float")
            if bias is not None:
                v = fn.fadd(v, fn.load_at("float", bias, i), fast=False)
            fn.store_at("float", v, y, i)


def _gemv_block(
    fn: Function, y: str, wt: str, x: str, k0: str, block: int, mp: int, ty: str, wty: str = "float"
) -> None:
    """y[i] += sum_j Wt[k0 + j, i] * x[k0 + j]: the block's products summed pairwise in float32,
    then added to y (float64 y: the long sum over blocks loses nothing)."""
    xs, rows = [], []
    for j in range(block):
        kj = fn.iop("add", k0, str(j)) if j else k0
        xv = fn.load_at("float", x, kj, "x")
        xs.append(fn.assign(f"fpext float {xv} to double") if wty == "double" else xv)
        rows.append(fn.gep(wty, wt, fn.iop("mul", kj, str(mp)), "w"))
    with fn.loop("0", str(mp), vectorize=wty == "float", hint="gv") as i:
        py = fn.gep(ty, y, i)
        terms = [fn.fmul(fn.load_at(wty, rows[j], i, "w"), xs[j], wty) for j in range(block)]
        while len(terms) > 1:
            terms = [
                fn.fadd(terms[j], terms[j + 1], wty) if j + 1 < len(terms) else terms[j]
                for j in range(0, len(terms), 2)
            ]
        part = fn.assign(f"fpext float {terms[0]} to double") if ty == "double" and wty == "float" else terms[0]
        fn.store(ty, fn.fadd(fn.load(ty, py, "y"), part, ty), py)
