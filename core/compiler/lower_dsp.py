"""Lowering of the featurizer chain: scale, IIR, frame buffer, window, FFT magnitude, filterbank,
log, DCT.

FFT: an iterative radix-2 complex FFT of n_fft/2 points over the even/odd samples (bit-reversed
gather from a precomputed table), per-stage contiguous twiddle tables, then the real-FFT split
step and |X| (or |X|^2 / n_fft), in float32 on whole vector registers; the filterbank is banded:
blocks of one register of filters over the columns where they are non-zero.
"""

from __future__ import annotations

import numpy as np

from core.compiler import kernels
from core.compiler.emitter import lit
from core.compiler.lower import Kernel, OpLowering, Region, lowering, pad
from core.features import dsp


@lowering("scale")
class Scale(OpLowering):
    def emit(self, k: Kernel) -> None:
        fn = k.fn
        factor = lit(float(k.node.attrs["factor"]), "float")
        with fn.loop("0", str(k.out_size), vectorize=True) as i:
            fn.store_at("float", fn.fmul(fn.load_at("float", k.ins[0], i), factor), k.out, i)


@lowering("iir")
class Iir(OpLowering):
    """Direct form II transposed in float64, exactly scipy.signal.lfilter's recurrence."""

    def _coeffs(self, node):
        a = np.asarray(node.attrs["a"], np.float64)
        b = np.asarray(node.attrs["b"], np.float64)
        if len(a) == 0 or a[0] == 0:
            raise ValueError("a[0] must be non-zero")
        n = max(len(a), len(b))
        a = np.concatenate([a, np.zeros(n - len(a))])
        b = np.concatenate([b, np.zeros(n - len(b))])
        return a, b

    def regions(self, node, in_shapes, out_shape):
        a, _ = self._coeffs(node)
        return [Region("zi", "double", max(len(a) - 1, 1))]

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        a, b = self._coeffs(k.node)
        n_taps = len(a)
        d = "double"
        if n_taps == 1:
            g = lit(b[0] / a[0], d)
            with fn.loop("0", str(k.out_size)) as i:
                x = fn.assign(f"fpext float {fn.load_at('float', k.ins[0], i)} to double")
                y = fn.fmul(x, g, d, fast=False)
                fn.store_at("float", fn.assign(f"fptrunc double {y} to float"), k.out, i)
            return
        b0 = b / a[0]
        a0 = a / a[0]
        z = k.r["zi"]
        with fn.loop("0", str(k.out_size)) as i:
            x = fn.assign(f"fpext float {fn.load_at('float', k.ins[0], i)} to double")
            z0 = fn.load_at(d, z, 0)
            y = fn.fadd(z0, fn.fmul(lit(b0[0], d), x, d, fast=False), d, fast=False)
            for n in range(n_taps - 2):
                zn1 = fn.load_at(d, z, n + 1)
                v = fn.fadd(zn1, fn.fmul(x, lit(b0[n + 1], d), d, fast=False), d, fast=False)
                v = fn.fsub(v, fn.fmul(y, lit(a0[n + 1], d), d, fast=False), d, fast=False)
                fn.store_at(d, v, z, n)
            last = n_taps - 1
            v = fn.fsub(
                fn.fmul(x, lit(b0[last], d), d, fast=False),
                fn.fmul(y, lit(a0[last], d), d, fast=False),
                d,
                fast=False,
            )
            fn.store_at(d, v, z, last - 1)
            fn.store_at("float", fn.assign(f"fptrunc double {y} to float"), k.out, i)


@lowering("frame_buffer")
class FrameBuffer(OpLowering):
    """Shift left by one hop and append it; the state buffer is the node's output."""

    out_alias = "buf"

    def regions(self, node, in_shapes, out_shape):
        return [Region("buf", "float", int(node.attrs["window_size"]))]

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        w = int(k.node.attrs["window_size"])
        hop = k.in_size
        buf = k.r["buf"]
        if hop >= w:
            fn.memcpy(buf, fn.gep("float", k.ins[0], hop - w), 4 * w)
        else:
            fn.memmove(buf, fn.gep("float", buf, hop), 4 * (w - hop))
            fn.memcpy(fn.gep("float", buf, w - hop), k.ins[0], 4 * hop)


@lowering("window")
class Window(OpLowering):
    def emit(self, k: Kernel) -> None:
        fn = k.fn
        n = k.out_size
        coeffs = dsp.window_coeffs(k.node.attrs["kind"], k.out_shape[-1] if len(k.out_shape) == 1 else n)
        c = k.m.const_array(f"window_{k.node.attrs['kind']}_{n}", coeffs.astype(np.float32))
        with fn.loop("0", str(n), vectorize=True) as i:
            v = fn.fmul(fn.load_at("float", k.ins[0], i), fn.load_at("float", c, i))
            fn.store_at("float", v, k.out, i)


def _bitrev(n_bits: int, n: int) -> np.ndarray:
    out = np.zeros(n, np.int64)
    for i in range(n):
        r, v = 0, i
        for _ in range(n_bits):
            r = (r << 1) | (v & 1)
            v >>= 1
        out[i] = r
    return out


@lowering("fft_mag")
class FftMag(OpLowering):
    """Real FFT of n_fft points in float32: a complex radix-2 FFT of n_fft/2 points over
    z = even + i odd samples, then the split X[k] = E[k] + W^k O[k], then |X| or |X|^2 / n_fft.

    The bit-reversed gather is fused with the first stage; stages whose half-span is at least one
    vector register of V floats run on whole registers (V butterflies at a time, twiddles from
    per-stage tables); the shorter ones act within each aligned register's worth of values and
    run in registers (shufflevector splits and merges the butterfly halves; constant twiddles);
    without SIMD they are unrolled with constant twiddles. The split runs on registers too, the
    mirrored bins h - i read as one reversed vector. Float32 error: O(log2 n) u
    relative to the spectrum's norm (Higham, Accuracy and Stability, Thm 24.2), spread over the
    bins like white noise; tests/core/compiler_helpers.float32_rtol models it that way.
    """

    ty = "float"

    def _n(self, node) -> int:
        n = int(node.attrs["n_fft"])
        if n < 2 or n & (n - 1):
            raise ValueError(f"n_fft must be a power of two >= 2 for the compiler, got {n}")
        return n

    def regions(self, node, in_shapes, out_shape):
        n = self._n(node)
        in_size = int(np.prod(in_shapes[0]))
        # n/2 complex values plus a copy of z[0] at index n/2 (the split reads bin h - i for i = 0)
        regs = [Region("re", self.ty, n // 2 + 1), Region("im", self.ty, n // 2 + 1)]
        if in_size < n:
            regs.append(Region("pad", "float", n))
        return regs

    def emit(self, k: Kernel) -> None:
        fn, m, d = k.fn, k.m, self.ty
        n = self._n(k.node)
        h = n // 2
        v = kernels.simd_floats(k.options)
        v = v if v > 1 and h % v == 0 and h >= 2 * v else 1  # lanes of the vector stages and split
        bits = h.bit_length() - 1
        src = k.ins[0]
        if k.in_size < n:  # zero-pad into scratch
            fn.memcpy(k.r["pad"], src, 4 * k.in_size)
            fn.memset0(fn.gep("float", k.r["pad"], k.in_size), str(4 * (n - k.in_size)))
            src = k.r["pad"]
        re, im = k.r["re"], k.r["im"]
        rev = m.const_array(f"fft_rev_{n}", 2 * _bitrev(bits, h), "i32")
        # twiddles of all stages in one table: stage with half-span s uses entries [s, 2s)
        tw = np.ones(max(h, 1), np.complex128)
        s = 1
        while s < h:
            tw[s : 2 * s] = np.exp(-2j * np.pi * np.arange(s) / (2 * s))
            s *= 2
        if h >= 2:  # bit-reversed gather fused with the first stage (twiddle 1)
            with fn.loop("0", str(h), step=2, hint="gather") as a:
                b = fn.iop("or", a, "1")
                ja, jb = fn.load_at("i32", rev, a, "j"), fn.load_at("i32", rev, b, "j")
                ar, ai = fn.load_at("float", src, ja), fn.load_at("float", src, fn.iop("or", ja, "1"))
                br, bi = fn.load_at("float", src, jb), fn.load_at("float", src, fn.iop("or", jb, "1"))
                fn.store_at(d, fn.fadd(ar, br, d), re, a)
                fn.store_at(d, fn.fadd(ai, bi, d), im, a)
                fn.store_at(d, fn.fsub(ar, br, d), re, b)
                fn.store_at(d, fn.fsub(ai, bi, d), im, b)
        else:
            fn.store_at(d, fn.load_at("float", src, 0), re, 0)
            fn.store_at(d, fn.load_at("float", src, 1), im, 0)
        twr = m.const_array(f"fft_twr_{n}", tw.real.astype(np.float32))
        twi = m.const_array(f"fft_twi_{n}", tw.imag.astype(np.float32))
        s = 2
        if v > 1 and s < v:  # stages 2 .. v/2 inside each register of v values, in registers
            self._register_stages(fn, re, im, tw, h, v)
            s = v
        while s < h:
            if v == 1 and s < 8:  # no SIMD: short stages unrolled with constant twiddles
                self._small_stage(fn, re, im, tw, s, h)
            else:
                self._stage(fn, re, im, twr, twi, s, h, v)
            s *= 2
        self._split(fn, m, k, re, im, n, v)

    def _register_stages(self, fn, re, im, tw, h, v):
        """The stages with half-span 2 .. v/2 act within aligned blocks of v values: per block one
        load of re and im, each stage splits the lanes into butterfly halves (shufflevector with
        constant masks), multiplies by constant twiddles, adds/subtracts and merges them back."""
        vt, ht = f"<{v} x float>", f"<{v // 2} x float>"

        def shuffle(a, b, lanes, ty):
            mask = "<" + ", ".join(f"i32 {i}" for i in lanes) + ">"
            return fn.assign(f"shufflevector {ty} {a}, {ty} {b}, <{len(lanes)} x i32> {mask}")

        def const(vals):
            return "<" + ", ".join(f"float {lit(float(x), 'float')}" for x in vals) + ">"

        with fn.loop("0", str(h), step=v, hint="fftreg") as g:
            pr, pi = fn.gep("float", re, g), fn.gep("float", im, g)
            xr, xi = fn.load(vt, pr), fn.load(vt, pi)
            s = 2
            while s < v:
                lo = [b + j for b in range(0, v, 2 * s) for j in range(s)]
                hi = [i + s for i in lo]
                ar, ai = shuffle(xr, xr, lo, vt), shuffle(xi, xi, lo, vt)
                br, bi = shuffle(xr, xr, hi, vt), shuffle(xi, xi, hi, vt)
                w = tw[s + np.array([i % s for i in range(v // 2)])]
                wr, wi = const(w.real), const(w.imag)
                tr = fn.fsub(fn.fmul(wr, br, ht), fn.fmul(wi, bi, ht), ht)
                ti = fn.fadd(fn.fmul(wr, bi, ht), fn.fmul(wi, br, ht), ht)
                sr, si = fn.fadd(ar, tr, ht), fn.fadd(ai, ti, ht)
                dr, di = fn.fsub(ar, tr, ht), fn.fsub(ai, ti, ht)
                # lane p of the block: the sum for the first half of its group, the difference after
                merge = [(p // (2 * s)) * s + p % (2 * s) + (v // 2 - s if p % (2 * s) >= s else 0) for p in range(v)]
                xr, xi = shuffle(sr, dr, merge, ht), shuffle(si, di, merge, ht)
                s *= 2
            fn.store(vt, xr, pr)
            fn.store(vt, xi, pi)

    def _butterfly(self, fn, re, im, a, b, wr, wi, ty="float"):
        """(z[a], z[b]) <- (z[a] + w z[b], z[a] - w z[b]); `ty` float or <V x float> from a, b."""
        pra, pia = fn.gep("float", re, a), fn.gep("float", im, a)
        prb, pib = fn.gep("float", re, b), fn.gep("float", im, b)
        ar, ai, br, bi = fn.load(ty, pra), fn.load(ty, pia), fn.load(ty, prb), fn.load(ty, pib)
        tr = fn.fsub(fn.fmul(wr, br, ty), fn.fmul(wi, bi, ty), ty)
        ti = fn.fadd(fn.fmul(wr, bi, ty), fn.fmul(wi, br, ty), ty)
        fn.store(ty, fn.fsub(ar, tr, ty), prb)
        fn.store(ty, fn.fsub(ai, ti, ty), pib)
        fn.store(ty, fn.fadd(ar, tr, ty), pra)
        fn.store(ty, fn.fadd(ai, ti, ty), pia)

    def _small_stage(self, fn, re, im, tw, s, h):
        d = self.ty
        with fn.loop("0", str(h), step=2 * s, hint=f"fft{s}g") as g:
            for j in range(s):
                a = fn.iop("add", g, str(j))
                b = fn.iop("add", g, str(j + s))
                self._butterfly(fn, re, im, a, b, lit(tw[s + j].real, d), lit(tw[s + j].imag, d))

    def _stage(self, fn, re, im, twr, twi, s, h, v):
        vt = f"<{v} x float>" if v > 1 else "float"
        with fn.loop("0", str(h), step=2 * s, hint=f"fft{s}g") as g:
            with fn.loop("0", str(s), step=v, hint=f"fft{s}") as j:
                a = fn.iop("add", g, j)
                b = fn.iop("add", a, str(s))
                tj = fn.iop("add", j, str(s))
                wr, wi = fn.load(vt, fn.gep("float", twr, tj)), fn.load(vt, fn.gep("float", twi, tj))
                self._butterfly(fn, re, im, a, b, wr, wi, vt)

    def _mag(self, fn, k, xr, xi, n, ty="float"):
        p = fn.fadd(fn.fmul(xr, xr, ty), fn.fmul(xi, xi, ty), ty)
        if k.node.attrs.get("power", False):
            return fn.fdiv(p, self._const(fn, float(n), ty), ty, fast=False)
        if ty == "float":
            return fn.intrinsic("sqrt", ty, [p])
        name = f"llvm.sqrt.v{ty[1:ty.index(' ')]}f32"
        fn.module.declare(name, f"declare {ty} @{name}({ty})")
        return fn.call(ty, f"@{name}", [(ty, p)])

    @staticmethod
    def _const(fn, value: float, ty: str) -> str:
        if ty == "float":
            return lit(value, "float")
        return fn.splat("float", int(ty[1 : ty.index(" ")]), lit(value, "float"))

    def _split(self, fn, m, k, re, im, n, v):
        """X[i] = E[i] + W^i O[i] from z = FFT(even + i odd), E/O from z[i] and conj(z[h - i]);
        bins 0..h-1 in one loop (z[h] holds a copy of z[0], so bin 0 needs no special case:
        E = re0, O = im0, W^0 = 1 give X[0] = re0 + im0 exactly), bin h = re0 - im0."""
        d = self.ty
        h = n // 2
        r0, i0 = fn.load_at(d, re, 0), fn.load_at(d, im, 0)
        fn.store_at("float", self._mag(fn, k, fn.fsub(r0, i0, d), lit(0.0, d), n), k.out, h)
        if h < 2:
            fn.store_at("float", self._mag(fn, k, fn.fadd(r0, i0, d), lit(0.0, d), n), k.out, 0)
            return
        fn.store_at(d, r0, re, h)
        fn.store_at(d, i0, im, h)
        w = np.exp(-2j * np.pi * np.arange(h) / n)
        wr_g = m.const_array(f"fft_wr_{n}", w.real.astype(np.float32))
        wi_g = m.const_array(f"fft_wi_{n}", w.imag.astype(np.float32))
        vt = f"<{v} x float>" if v > 1 else "float"
        half = self._const(fn, 0.5, vt)
        rev = "<" + ", ".join(f"i32 {v - 1 - q}" for q in range(v)) + ">"
        with fn.loop("0", str(h), step=v, hint="split") as i:
            # bins i..i+v-1 and their mirrors h-i..h-i-v+1: one vector from h-i-v+1, lanes reversed
            j = fn.iop("sub", str(h - v + 1), i)
            ar, ai = fn.load(vt, fn.gep("float", re, i)), fn.load(vt, fn.gep("float", im, i))
            br, bi = fn.load(vt, fn.gep("float", re, j)), fn.load(vt, fn.gep("float", im, j))
            if v > 1:
                br = fn.assign(f"shufflevector {vt} {br}, {vt} poison, <{v} x i32> {rev}")
                bi = fn.assign(f"shufflevector {vt} {bi}, {vt} poison, <{v} x i32> {rev}")
            er = fn.fmul(fn.fadd(ar, br, vt), half, vt)
            ei = fn.fmul(fn.fsub(ai, bi, vt), half, vt)
            or_ = fn.fmul(fn.fadd(ai, bi, vt), half, vt)
            oi = fn.fmul(fn.fsub(br, ar, vt), half, vt)
            wr, wi = fn.load(vt, fn.gep("float", wr_g, i)), fn.load(vt, fn.gep("float", wi_g, i))
            xr = fn.fadd(er, fn.fsub(fn.fmul(wr, or_, vt), fn.fmul(wi, oi, vt), vt), vt)
            xi = fn.fadd(ei, fn.fadd(fn.fmul(wr, oi, vt), fn.fmul(wi, or_, vt), vt), vt)
            fn.store(vt, self._mag(fn, k, xr, xi, n, vt), fn.gep("float", k.out, i))


def band_blocks(w: np.ndarray, lanes: int, accs: int = 4) -> list[tuple[int, int, int, np.ndarray]]:
    """A mostly-zero (n_filters, n_cols) matrix as blocks of `lanes` consecutive filters, each with
    the column range where any of them is non-zero: (first filter, first column, columns, weights
    (columns, lanes) zero-filled). The range is widened to a multiple of `accs` inside [0, n_cols)
    when it fits, so the sum can cycle over `accs` accumulators."""
    n_f, n_cols = w.shape
    out = []
    for f0 in range(0, n_f, lanes):
        blk = w[f0 : f0 + lanes]
        cols = np.nonzero(np.any(blk != 0, axis=0))[0]
        if len(cols) == 0:
            out.append((f0, 0, 0, np.zeros((0, lanes), np.float32)))
            continue
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        length = -(-(c1 - c0) // accs) * accs
        if length <= n_cols:
            c0 = min(c0, n_cols - length)
            c1 = c0 + length
        tile = np.zeros((c1 - c0, lanes), np.float32)
        tile[:, : len(blk)] = blk[:, c0:c1].T
        out.append((f0, c0, c1 - c0, tile))
    return out


@lowering("filterbank")
class Filterbank(OpLowering):
    """Banded: blocks of one vector register of consecutive filters, each summing only the columns
    where one of its filters is non-zero (a mel bank's triangles are narrow and ordered), with
    weights stored (column, lane) and four accumulators in turn over the columns: per column one
    broadcast of the spectrum bin and one fused multiply-add. Float32 sums of non-negative terms:
    within sqrt(n) u of the reference's float64 matmul (zeros add nothing exactly)."""

    ACCS = 4

    def regions(self, node, in_shapes, out_shape):
        return [Region("acc", "float", pad(int(out_shape[0])))]

    def emit(self, k: Kernel) -> None:
        fn, m = k.fn, k.m
        w = np.asarray(k.node.params["weights"], np.float32)
        n_cols = min(k.in_size, w.shape[1])
        v = kernels.simd_floats(k.options)
        vt = f"<{v} x float>" if v > 1 else "float"
        fma = f"llvm.fmuladd.v{v}f32" if v > 1 else "llvm.fmuladd.f32"
        m.declare(fma, f"declare {vt} @{fma}({vt}, {vt}, {vt})")
        blocks = band_blocks(w[:, :n_cols], v, self.ACCS)
        g_w = m.const_array("fb_w", np.concatenate([b[3].reshape(-1) for b in blocks] + [np.zeros(1, np.float32)]))
        off = 0
        acc = k.r["acc"]
        for f0, c0, length, _ in blocks:
            out = fn.gep("float", acc, f0)
            if length == 0:
                fn.store(vt, "zeroinitializer" if v > 1 else lit(0.0, "float"), out)
                continue
            accs = self.ACCS if length % self.ACCS == 0 else 1
            slots = []
            for _ in range(accs):
                a = fn.alloca(vt, "fb")
                fn.store(vt, "zeroinitializer" if v > 1 else lit(0.0, "float"), a)
                slots.append(a)
            base = fn.gep("float", g_w, off)
            with fn.loop("0", str(length), step=accs, hint="fb") as c:
                for q, a in enumerate(slots):
                    cq = fn.iop("add", c, str(q)) if q else c
                    xv = fn.load_at("float", k.ins[0], fn.iop("add", cq, str(c0)), "x")
                    xs = fn.splat("float", v, xv) if v > 1 else xv
                    wv = fn.load(vt, fn.gep("float", base, fn.iop("mul", cq, str(v))), "w")
                    r = fn.call(vt, f"@{fma}", [(vt, wv), (vt, xs), (vt, fn.load(vt, a))])
                    fn.store(vt, r, a)
            parts = [fn.load(vt, a) for a in slots]
            while len(parts) > 1:
                parts = [fn.fadd(parts[i], parts[i + 1], vt, fast=False) for i in range(0, len(parts), 2)]
            fn.store(vt, parts[0], out)
            off += length * v
        fn.memcpy(k.out, acc, 4 * w.shape[0])


@lowering("log")
class Log(OpLowering):
    def emit(self, k: Kernel) -> None:
        fn = k.fn
        delta = float(k.node.attrs.get("delta", 0.0))
        d = lit(delta, "float")
        with fn.loop("0", str(k.out_size), vectorize=True) as i:
            x = fn.load_at("float", k.ins[0], i)
            if not delta:
                fn.store_at("float", kernels.unary(fn, "log", x), k.out, i)
                return
            # the reference adds in float64; here s = fl(x + delta) plus its exact rounding error
            # (TwoSum), and log(x + delta) = log(s) + err / s to first order
            s = fn.fadd(x, d, fast=False)
            bb = fn.fsub(s, x, fast=False)
            err = fn.fadd(fn.fsub(x, fn.fsub(s, bb, fast=False), fast=False), fn.fsub(d, bb, fast=False), fast=False)
            v = fn.fadd(kernels.unary(fn, "log", s), fn.fdiv(err, s, fast=False), fast=False)
            fn.store_at("float", v, k.out, i)


@lowering("dct")
class Dct(OpLowering):
    def regions(self, node, in_shapes, out_shape):
        return [Region("acc", "double", pad(int(np.prod(out_shape))))]

    def emit(self, k: Kernel) -> None:
        mat = dsp.dct_matrix(k.in_size, k.node.attrs.get("n_out"))
        wp, mp = kernels.padded_rows(mat, dtype=np.float64)
        wt = kernels.gemv_weights(k.m, "dct_w", wp, "double")
        # the output region is padded to mp; all float64 like the reference (DCT sums cancel)
        kernels.gemv(k.fn, k.out, wt, k.ins[0], k.in_size, mp, acc64=k.r["acc"], wty="double")
