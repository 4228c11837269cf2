"""Lowering of the streaming temporal ops of core/graph/ops_nn.py: conv, pool, time_mean, delay.

conv / pool keep a window of (kernel_t - 1) * dilation_t + 1 frames in the context (the newest
last) with a validity flag per frame; a reset zeroes both, exactly the reference's zero history.
Pooling gathers each output position's patch with a precomputed index table (-1 = width
padding). conv picks one of two loop orders by a rough operation count (`_direct`): gathered
(patch by index table, one fused GEMV per (group, output column)) or direct (per weight tap a
vectorised pass over the output columns, which suits depthwise convs over wide frames); both
accumulate in float32 (the GEMV pairwise within blocks of 8 taps, direct in tap order: within
the float32 summation-order error the tests allow) and neither unrolls the groups.
"""

from __future__ import annotations

import numpy as np

from core.compiler import kernels
from core.compiler.emitter import lit
from core.compiler.lower import Kernel, OpLowering, Region, lowering, pad
from core.graph import ops_nn


def _geometry(node) -> dict:
    a = node.attrs
    g = {
        "cin": int(a["in_channels"]),
        "win": int(a.get("in_width", 1)),
        "kt": int(a.get("kernel_t", 1)),
        "dt": int(a.get("dilation_t", 1)),
        "kw": int(a.get("kernel_w", 1)),
        "dw": int(a.get("dilation_w", 1)),
        "sw": int(a.get("stride_w", 1)),
        "pl": int(a.get("pad_w", [0, 0])[0]),
        "warmup": int(a.get("warmup", 0)),
    }
    g["hist"] = (g["kt"] - 1) * g["dt"]
    g["frame"] = g["cin"] * g["win"]
    g["wout"] = ops_nn._out_width(node)
    return g


def _window_regions(g: dict) -> list[Region]:
    return [
        Region("win", "float", (g["hist"] + 1) * g["frame"]),
        Region("valid", "float", g["hist"] + 1),
        Region("seen", "i64", 1),
    ]


def _push_frame(k: Kernel, g: dict) -> None:
    """Shift the window by one frame and append the input (zeros while warming up)."""
    fn = k.fn
    win, valid, frame, hist = k.r["win"], k.r["valid"], g["frame"], g["hist"]
    if hist:
        fn.memmove(win, fn.gep("float", win, frame), 4 * hist * frame)
        fn.memmove(valid, fn.gep("float", valid, 1), 4 * hist)
    seen = fn.load("i64", k.r["seen"])
    fn.store("i64", fn.iop("add", seen, "1", "i64"), k.r["seen"])
    ok = fn.icmp("sge", seen, str(g["warmup"]), "i64")
    fn.store_at("float", fn.select(ok, lit(1.0, "float"), lit(0.0, "float")), valid, hist)
    last = fn.gep("float", win, hist * frame)
    with fn.loop("0", str(frame), vectorize=True, hint="push") as i:
        v = fn.select(ok, fn.load_at("float", k.ins[0], i), lit(0.0, "float"))
        fn.store_at("float", v, last, i)


def _tap_index(g: dict, c: int, i: int, col: int) -> int:
    """Index into the window of channel c, time tap i, padded column col (-1 for padding)."""
    w = col - g["pl"]
    if not 0 <= w < g["win"]:
        return -1
    return (i * g["dt"]) * g["frame"] + c * g["win"] + w


def _width_range(g: dict, j: int) -> tuple[int, int]:
    """Output columns [lo, hi) whose width tap j falls inside the frame (not on padding)."""
    off = j * g["dw"] - g["pl"]
    lo = max(0, -(off // g["sw"]))  # smallest v with v * sw + off >= 0
    hi = min(g["wout"], (g["win"] - 1 - off) // g["sw"] + 1)  # past the largest v with v * sw + off < win
    return lo, max(lo, hi)


def _direct(w: np.ndarray, groups: int, g: dict) -> bool:
    """Pick the conv loop order by a cost model (fitted to host timings of both orders on the
    BC-ResNet's convs, in units of about 0.1 ns).

    gathered: per (group, output column) a patch gather and a GEMV over the group's output
    channels padded to 16: about 50 + 0.6 per padded multiply-add.
    direct: per (output channel, input channel, time tap, width tap) one pass over the output
    columns: about 4 + 0.75 per column when it vectorises (width stride 1), 4 + 5 per column with
    a width stride (scalar). Depthwise convs over wide frames run direct, dense ones over narrow
    frames and the strided stem gathered."""
    cout, cin_g, kt, kw = w.shape
    n_k = cin_g * kt * kw
    gathered = groups * g["wout"] * (50 + 0.6 * n_k * pad(cout // groups))
    direct = cout * n_k * (4 + (0.75 if g["sw"] == 1 else 5) * g["wout"])
    return direct < gathered


@lowering("conv")
class Conv(OpLowering):
    def regions(self, node, in_shapes, out_shape):
        g = _geometry(node)
        w = np.asarray(node.params["weight"])
        groups = int(node.attrs.get("groups", 1))
        if _direct(w, groups, g):
            return _window_regions(g) + [Region("acc", "float", pad(g["wout"]))]
        cout_g = w.shape[0] // groups
        k = int(np.prod(w.shape[1:]))
        return _window_regions(g) + [Region("patch", "float", k), Region("y", "float", pad(cout_g))]

    def emit(self, k: Kernel) -> None:
        g = _geometry(k.node)
        w = np.asarray(k.node.params["weight"], np.float32)
        groups = int(k.node.attrs.get("groups", 1))
        _push_frame(k, g)
        if _direct(w, groups, g):
            self._emit_direct(k, g, w, groups)
        else:
            self._emit_gathered(k, g, w, groups)

    @staticmethod
    def _emit_direct(k: Kernel, g: dict, w: np.ndarray, groups: int) -> None:
        """out[o, v] = sum_{c, i, j} w[o, c, i, j] * window[i * dt, group(o) * cin_g + c, v * sw - pl + j * dw]
        accumulated in float32 in tap order, vectorised over the output columns v, then + bias."""
        fn, m = k.fn, k.m
        cout, cin_g, kt, kw = w.shape
        cout_g, wout = cout // groups, g["wout"]
        wt = m.const_array(f"conv_{k.node.id}_w", w.reshape(-1))
        bias = m.const_array(f"conv_{k.node.id}_b", np.asarray(k.node.params.get("bias", np.zeros(cout)), np.float32))
        acc = k.r["acc"]
        with fn.loop("0", str(cout), hint="oc") as o:
            fn.memset0(acc, str(4 * wout))
            chan0 = fn.iop("mul", fn.iop("udiv", o, str(cout_g)), str(cin_g))
            with fn.loop("0", str(cin_g), hint="ic") as c:
                with fn.loop("0", str(kt), hint="kt") as i:
                    row = fn.iop("add", fn.iop("mul", i, str(g["dt"] * g["frame"])),
                                 fn.iop("mul", fn.iop("add", chan0, c), str(g["win"])))
                    wbase = fn.iop("mul", fn.iop("add", fn.iop("mul", fn.iop("add", fn.iop("mul", o, str(cin_g)), c),
                                                                str(kt)), i), str(kw))
                    for j in range(kw):
                        lo, hi = _width_range(g, j)
                        if lo >= hi:
                            continue
                        wv = fn.load_at("float", wt, fn.iop("add", wbase, str(j)))
                        src = fn.gep("float", k.r["win"], fn.iop("add", row, str(j * g["dw"] - g["pl"])))
                        with fn.loop(str(lo), str(hi), vectorize=True, hint="col") as v:
                            x = fn.load_at("float", src, fn.iop("mul", v, str(g["sw"])) if g["sw"] != 1 else v)
                            fn.store_at("float", fn.fadd(fn.load_at("float", acc, v), fn.fmul(x, wv)), acc, v)
            b = fn.load_at("float", bias, o)
            out = fn.gep("float", k.out, fn.iop("mul", o, str(wout)))
            with fn.loop("0", str(wout), vectorize=True, hint="bias") as v:
                fn.store_at("float", fn.fadd(fn.load_at("float", acc, v), b, fast=False), out, v)

    @staticmethod
    def _emit_gathered(k: Kernel, g: dict, w: np.ndarray, groups: int) -> None:
        """Per (group, output column): gather the patch by an index table, one fused float32 GEMV."""
        fn, m = k.fn, k.m
        cout, cin_g, kt, kw = w.shape
        cout_g = cout // groups
        n_k = cin_g * kt * kw
        table = np.empty((groups, g["wout"], n_k), np.int64)
        for gi in range(groups):
            for v in range(g["wout"]):
                table[gi, v] = [
                    _tap_index(g, gi * cin_g + c, i, v * g["sw"] + j * g["dw"])
                    for c in range(cin_g)
                    for i in range(kt)
                    for j in range(kw)
                ]
        t = m.const_array(f"conv_idx_{k.node.id}", table, "i32")
        bias = np.asarray(k.node.params.get("bias", np.zeros(cout)), np.float32)
        # every group's weights (n_k, mp) transposed and padded, one after the other
        mp = pad(cout_g)
        rows = [kernels.padded_rows(w[gi * cout_g : (gi + 1) * cout_g].reshape(cout_g, n_k))[0] for gi in range(groups)]
        wt_all = m.const_array(f"conv_{k.node.id}_w", np.concatenate([r.T for r in rows]))  # (groups * n_k, mp)
        b_all = m.const_array(f"conv_{k.node.id}_b", kernels.padded_vec(bias, groups))
        patch, y = k.r["patch"], k.r["y"]
        with fn.loop("0", str(groups), hint="grp") as gi:
            wt = fn.gep("float", wt_all, fn.iop("mul", gi, str(n_k * mp)))
            b = fn.gep("float", b_all, fn.iop("mul", gi, str(mp)))
            with fn.loop("0", str(g["wout"]), hint="col") as v:
                base = fn.iop("mul", fn.iop("add", v, fn.iop("mul", gi, str(g["wout"]))), str(n_k))
                with fn.loop("0", str(n_k), vectorize=True, hint="patch") as i:
                    j = fn.load_at("i32", t, fn.iop("add", base, i))
                    ok = fn.icmp("sge", j, "0")
                    val = fn.load_at("float", k.r["win"], fn.select(ok, j, "0", "i32"))
                    fn.store_at("float", fn.select(ok, val, lit(0.0, "float")), patch, i)
                kernels.gemv(fn, y, wt, patch, n_k, mp, b)
                # y[o] -> out[(gi * cout_g + o) * wout + v]
                with fn.loop("0", str(cout_g), hint="scatter") as o:
                    dst = fn.iop("add", fn.iop("mul", fn.iop("add", o, fn.iop("mul", gi, str(cout_g))),
                                               str(g["wout"])), v)
                    fn.store_at("float", fn.load_at("float", y, o), k.out, dst)


@lowering("pool")
class Pool(OpLowering):
    def regions(self, node, in_shapes, out_shape):
        if node.attrs.get("kind", "max") not in ("max", "avg"):
            raise ValueError(f"unknown pooling {node.attrs.get('kind')!r}")
        return _window_regions(_geometry(node)) + [Region("acc", "double", 2)]

    def emit(self, k: Kernel) -> None:
        fn, m, d = k.fn, k.m, "double"
        g = _geometry(k.node)
        kind = k.node.attrs.get("kind", "max")
        include_pad = bool(k.node.attrs.get("count_include_pad"))
        _push_frame(k, g)
        kt, kw = g["kt"], g["kw"]
        taps = kt * kw
        table = np.empty((g["cin"], g["wout"], taps), np.int64)
        rows = np.array([i * g["dt"] for i in range(kt) for _ in range(kw)])
        for c in range(g["cin"]):
            for v in range(g["wout"]):
                table[c, v] = [_tap_index(g, c, i, v * g["sw"] + j * g["dw"]) for i in range(kt) for j in range(kw)]
        t = m.const_array(f"pool_idx_{k.node.id}", table, "i32")
        tr = m.const_array(f"pool_row_{k.node.id}", rows, "i32")
        acc, cnt = k.r["acc"], fn.gep(d, k.r["acc"], 1)
        with fn.loop("0", str(k.out_size), hint="out") as o:
            base = fn.iop("mul", o, str(taps))
            fn.store(d, lit(float("-inf") if kind == "max" else 0.0, d), acc)
            fn.store(d, lit(0.0, d), cnt)
            with fn.loop("0", str(taps), hint="tap") as i:
                j = fn.load_at("i32", t, fn.iop("add", base, i))
                row_ok = fn.fcmp("one", fn.load_at("float", k.r["valid"], fn.load_at("i32", tr, i)), lit(0.0, "float"))
                ok = fn.iop("and", fn.icmp("sge", j, "0"), row_ok, "i1")
                x = fn.assign(f"fpext float {fn.load_at('float', k.r['win'], fn.select(ok, j, '0', 'i32'))} to double")
                cur = fn.load(d, acc)
                if kind == "max":
                    new = fn.select(fn.fcmp("ogt", x, cur, d), x, cur, d)
                    new = fn.select(fn.fcmp("uno", x, x, d), x, new, d)
                else:
                    new = fn.fadd(cur, x, d, fast=False)
                fn.store(d, fn.select(ok, new, cur, d), acc)
                c = fn.load(d, cnt)
                fn.store(d, fn.select(ok, fn.fadd(c, lit(1.0, d), d, fast=False), c, d), cnt)
            res = fn.load(d, acc)
            if kind == "max":  # nothing real in the window (or +-inf): 0, like the reference
                finite = fn.fcmp("olt", fn.intrinsic("fabs", d, [res]), lit(float("inf"), d), d)
                res = fn.select(finite, res, lit(0.0, d), d)
            else:
                c = fn.load(d, cnt)
                div = (
                    lit(float(taps), d)
                    if include_pad
                    else fn.select(fn.fcmp("olt", c, lit(1.0, d), d), lit(1.0, d), c, d)
                )
                res = fn.fdiv(res, div, d, fast=False)
            fn.store_at("float", fn.assign(f"fptrunc double {res} to float"), k.out, o)


@lowering("time_mean")
class TimeMean(OpLowering):
    """Running mean since the last reset, float64 sum like the reference."""

    def regions(self, node, in_shapes, out_shape):
        n = int(np.prod(in_shapes[0]))
        return [Region("sum", "double", n), Region("count", "i64", 1), Region("seen", "i64", 1)]

    def emit(self, k: Kernel) -> None:
        fn, d = k.fn, "double"
        warmup = int(k.node.attrs.get("warmup", 0))
        seen = fn.load("i64", k.r["seen"])
        fn.store("i64", fn.iop("add", seen, "1", "i64"), k.r["seen"])
        ok = fn.icmp("sge", seen, str(warmup), "i64")
        count = fn.load("i64", k.r["count"])
        count = fn.select(ok, fn.iop("add", count, "1", "i64"), count, "i64")
        fn.store("i64", count, k.r["count"])
        denom = fn.assign(f"sitofp i64 {fn.select(fn.icmp('slt', count, '1', 'i64'), '1', count, 'i64')} to double")
        with fn.loop("0", str(k.out_size), vectorize=True, hint="mean") as i:
            s = fn.load_at(d, k.r["sum"], i)
            x = fn.assign(f"fpext float {fn.load_at('float', k.ins[0], i)} to double")
            s = fn.select(ok, fn.fadd(s, x, d, fast=False), s, d)
            fn.store_at(d, s, k.r["sum"], i)
            y = fn.fdiv(s, denom, d, fast=False)
            fn.store_at("float", fn.assign(f"fptrunc double {y} to float"), k.out, i)


@lowering("delay")
class Delay(OpLowering):
    """y[t] = x[t - frames]: a shift register of `frames` frames."""

    def regions(self, node, in_shapes, out_shape):
        n = int(np.prod(in_shapes[0]))
        return [Region("buf", "float", max(int(node.attrs["frames"]), 1) * n)]

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        frames, n = int(k.node.attrs["frames"]), k.in_size
        if frames == 0:
            fn.memcpy(k.out, k.ins[0], 4 * n)
            return
        buf = k.r["buf"]
        fn.memcpy(k.out, buf, 4 * n)
        if frames > 1:
            fn.memmove(buf, fn.gep("float", buf, n), 4 * (frames - 1) * n)
        fn.memcpy(fn.gep("float", buf, (frames - 1) * n), k.ins[0], 4 * n)
