"""Lowering of the featurizer chain: scale, IIR, frame buffer, window, FFT magnitude, filterbank,
log, DCT.

FFT: an iterative radix-2 complex FFT of n_fft/2 points over the even/odd samples (bit-reversed
gather from a precomputed table), per-stage contiguous twiddle tables, then the real-FFT split
step and |X| (or |X|^2 / n_fft). It runs in float64 like the reference (numpy's rfft), which
keeps small bins accurate; the filterbank is sparse: (start, length, offset) per filter.
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
    ty = "double"

    def _n(self, node) -> int:
        n = int(node.attrs["n_fft"])
        if n < 2 or n & (n - 1):
            raise ValueError(f"n_fft must be a power of two >= 2 for the compiler, got {n}")
        return n

    def regions(self, node, in_shapes, out_shape):
        n = self._n(node)
        in_size = int(np.prod(in_shapes[0]))
        regs = [Region("re", self.ty, n // 2), Region("im", self.ty, n // 2)]
        if in_size < n:
            regs.append(Region("pad", "float", n))
        return regs

    def emit(self, k: Kernel) -> None:
        fn, m, d = k.fn, k.m, self.ty
        n = self._n(k.node)
        h = n // 2
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
                ar, ai = (
                    self._ext(fn, fn.load_at("float", src, ja)),
                    self._ext(fn, fn.load_at("float", src, fn.iop("or", ja, "1"))),
                )
                br, bi = (
                    self._ext(fn, fn.load_at("float", src, jb)),
                    self._ext(fn, fn.load_at("float", src, fn.iop("or", jb, "1"))),
                )
                fn.store_at(d, fn.fadd(ar, br, d), re, a)
                fn.store_at(d, fn.fadd(ai, bi, d), im, a)
                fn.store_at(d, fn.fsub(ar, br, d), re, b)
                fn.store_at(d, fn.fsub(ai, bi, d), im, b)
        else:
            fn.store_at(d, self._ext(fn, fn.load_at("float", src, 0)), re, 0)
            fn.store_at(d, self._ext(fn, fn.load_at("float", src, 1)), im, 0)
        twr = m.const_array(f"fft_twr_{n}", tw.real, d)
        twi = m.const_array(f"fft_twi_{n}", tw.imag, d)
        s = 2
        while s < h:
            if s < 8:  # short stages: butterflies unrolled with constant twiddles
                self._small_stage(fn, re, im, tw, s, h)
            else:
                self._stage(fn, re, im, twr, twi, s, h)
            s *= 2
        self._split(fn, m, k, re, im, n)

    def _ext(self, fn, v):
        return fn.assign(f"fpext float {v} to double") if self.ty == "double" else v

    def _butterfly(self, fn, re, im, a, b, wr, wi):
        d = self.ty
        pra, pia, prb, pib = fn.gep(d, re, a), fn.gep(d, im, a), fn.gep(d, re, b), fn.gep(d, im, b)
        ar, ai, br, bi = fn.load(d, pra), fn.load(d, pia), fn.load(d, prb), fn.load(d, pib)
        tr = fn.fsub(fn.fmul(wr, br, d), fn.fmul(wi, bi, d), d)
        ti = fn.fadd(fn.fmul(wr, bi, d), fn.fmul(wi, br, d), d)
        fn.store(d, fn.fsub(ar, tr, d), prb)
        fn.store(d, fn.fsub(ai, ti, d), pib)
        fn.store(d, fn.fadd(ar, tr, d), pra)
        fn.store(d, fn.fadd(ai, ti, d), pia)

    def _small_stage(self, fn, re, im, tw, s, h):
        d = self.ty
        with fn.loop("0", str(h), step=2 * s, hint=f"fft{s}g") as g:
            for j in range(s):
                a = fn.iop("add", g, str(j))
                b = fn.iop("add", g, str(j + s))
                self._butterfly(fn, re, im, a, b, lit(tw[s + j].real, d), lit(tw[s + j].imag, d))

    def _stage(self, fn, re, im, twr, twi, s, h):
        d = self.ty
        with fn.loop("0", str(h), step=2 * s, hint=f"fft{s}g") as g:
            with fn.loop("0", str(s), hint=f"fft{s}") as j:
                a = fn.iop("add", g, j)
                b = fn.iop("add", a, str(s))
                tj = fn.iop("add", j, str(s))
                wr, wi = fn.load_at(d, twr, tj), fn.load_at(d, twi, tj)
                pra, pia, prb, pib = fn.gep(d, re, a), fn.gep(d, im, a), fn.gep(d, re, b), fn.gep(d, im, b)
                ar, ai, br, bi = fn.load(d, pra), fn.load(d, pia), fn.load(d, prb), fn.load(d, pib)
                tr = fn.fsub(fn.fmul(wr, br, d), fn.fmul(wi, bi, d), d)
                ti = fn.fadd(fn.fmul(wr, bi, d), fn.fmul(wi, br, d), d)
                fn.store(d, fn.fsub(ar, tr, d), prb)
                fn.store(d, fn.fsub(ai, ti, d), pib)
                fn.store(d, fn.fadd(ar, tr, d), pra)
                fn.store(d, fn.fadd(ai, ti, d), pia)

    def _mag(self, fn, k, xr, xi, n):
        d = self.ty
        p = fn.fadd(fn.fmul(xr, xr, d), fn.fmul(xi, xi, d), d)
        if k.node.attrs.get("power", False):
            v = fn.fdiv(p, lit(float(n), d), d, fast=False)
        else:
            v = fn.intrinsic("sqrt", d, [p])
        return fn.assign(f"fptrunc double {v} to float") if d == "double" else v

    def _split(self, fn, m, k, re, im, n):
        """X[k] = E[k] + W^k O[k] from Z = FFT(even + i odd); bins 0..n/2."""
        d = self.ty
        h = n // 2
        r0, i0 = fn.load_at(d, re, 0), fn.load_at(d, im, 0)
        fn.store_at("float", self._mag(fn, k, fn.fadd(r0, i0, d), lit(0.0, d), n), k.out, 0)
        fn.store_at("float", self._mag(fn, k, fn.fsub(r0, i0, d), lit(0.0, d), n), k.out, h)
        if h < 2:
            return
        w = np.exp(-2j * np.pi * np.arange(h) / n)
        wr_g = m.const_array(f"fft_wr_{n}", w.real, d)
        wi_g = m.const_array(f"fft_wi_{n}", w.imag, d)
        half = lit(0.5, d)
        with fn.loop("1", str(h), hint="split") as i:
            j = fn.iop("sub", str(h), i)
            ar, ai = fn.load_at(d, re, i), fn.load_at(d, im, i)
            br, bi = fn.load_at(d, re, j), fn.load_at(d, im, j)
            er = fn.fmul(fn.fadd(ar, br, d), half, d)
            ei = fn.fmul(fn.fsub(ai, bi, d), half, d)
            or_ = fn.fmul(fn.fadd(ai, bi, d), half, d)
            oi = fn.fmul(fn.fsub(br, ar, d), half, d)
            wr, wi = fn.load_at(d, wr_g, i), fn.load_at(d, wi_g, i)
            xr = fn.fadd(er, fn.fsub(fn.fmul(wr, or_, d), fn.fmul(wi, oi, d), d), d)
            xi = fn.fadd(ei, fn.fadd(fn.fmul(wr, oi, d), fn.fmul(wi, or_, d), d), d)
            fn.store_at("float", self._mag(fn, k, xr, xi, n), k.out, i)


def sparse_rows(w: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a mostly-zero matrix as (start, length, offset) + packed float32 weights."""
    w = np.asarray(w, np.float32)[:, :n_cols]
    starts, lens, offs, packed = [], [], [], []
    off = 0
    for row in w:
        nz = np.nonzero(row)[0]
        if len(nz) == 0:
            starts.append(0)
            lens.append(0)
        else:
            s, e = int(nz[0]), int(nz[-1]) + 1
            starts.append(s)
            lens.append(e - s)
            packed.append(row[s:e])
        offs.append(off)
        off += lens[-1]
    data = np.concatenate(packed) if packed else np.zeros(1, np.float32)
    return np.array(starts), np.array(lens), np.array(offs), data


@lowering("filterbank")
class Filterbank(OpLowering):
    """Sparse rows, summed in float64 from exact products like the reference."""

    def regions(self, node, in_shapes, out_shape):
        return [Region("acc", "double", 1)]

    def emit(self, k: Kernel) -> None:
        fn, m, d = k.fn, k.m, "double"
        w = np.asarray(k.node.params["weights"], np.float32)
        n_cols = min(k.in_size, w.shape[1])
        starts, lens, offs, data = sparse_rows(w, n_cols)
        g_s = m.const_array("fb_start", starts, "i32")
        g_l = m.const_array("fb_len", lens, "i32")
        g_o = m.const_array("fb_off", offs, "i32")
        g_w = m.const_array("fb_w", data)
        acc = k.r["acc"]
        with fn.loop("0", str(w.shape[0]), hint="filt") as f:
            s = fn.load_at("i32", g_s, f)
            ln = fn.load_at("i32", g_l, f)
            o = fn.load_at("i32", g_o, f)
            x = fn.gep("float", k.ins[0], s)
            wv = fn.gep("float", g_w, o)
            fn.store(d, lit(0.0, d), acc)
            with fn.loop("0", ln, hint="tap") as i:
                wi = fn.assign(f"fpext float {fn.load_at('float', wv, i)} to double")
                xi = fn.assign(f"fpext float {fn.load_at('float', x, i)} to double")
                fn.store(d, fn.fadd(fn.load(d, acc), fn.fmul(wi, xi, d), d, fast="reduce"), acc)
            fn.store_at("float", fn.assign(f"fptrunc double {fn.load(d, acc)} to float"), k.out, f)


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
