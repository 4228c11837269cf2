"""Lowering of the classifier ops: unary, binary (broadcasting), softmax, log-softmax, dense, GRU,
LSTM (with the VAD reset trigger) and the VAD itself (float64, like the reference, for exact 0/1).

Recurrent weights are padded per gate to 16 rows, so every element-wise gate loop runs over a
multiple of 16 with no remainder; padded lanes stay exactly zero.
"""

from __future__ import annotations

import numpy as np

from core.compiler import kernels
from core.compiler.emitter import lit
from core.compiler.lower import Kernel, OpLowering, Region, lowering, pad
from core.features.vad import cmessage_weights
from core.graph.ops_rnn import reset_config, vad_config


@lowering("input", "constant", "identity", "output")
class Plumbing(OpLowering):
    """Handled by the step function: inputs and constants are pointers, identity aliases."""

    out_alias = "input0"
    emits = False


@lowering("unary")
class Unary(OpLowering):
    def regions(self, node, in_shapes, out_shape):
        if node.attrs["fn"] not in kernels.UNARY_NAMES:
            raise ValueError(f"unknown unary function {node.attrs['fn']!r}")
        return []

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        with fn.loop("0", str(k.out_size), vectorize=True) as i:
            v = kernels.unary(fn, k.node.attrs["fn"], fn.load_at("float", k.ins[0], i))
            fn.store_at("float", v, k.out, i)


@lowering("binary")
class Binary(OpLowering):
    def regions(self, node, in_shapes, out_shape):
        if node.attrs["fn"] not in kernels.BINARY_NAMES:
            raise ValueError(f"unknown binary function {node.attrs['fn']!r}")
        return []

    def emit(self, k: Kernel) -> None:
        fn, m = k.fn, k.m
        name = k.node.attrs["fn"]
        n = k.out_size
        sa, sb = k.size(0), k.size(1)
        tables = []
        for j, s in enumerate((sa, sb)):
            if s == n and tuple(k.in_shapes[j]) == tuple(k.out_shape):
                tables.append("same")
            elif s == 1:
                tables.append("scalar")
            else:  # general broadcasting: a flat index table
                idx = np.broadcast_to(np.arange(s).reshape(k.in_shapes[j]), k.out_shape).reshape(-1)
                tables.append(m.const_array(f"bcast_{s}_{n}", idx, "i32"))
        scalars = [fn.load_at("float", k.ins[j], 0) if t == "scalar" else None for j, t in enumerate(tables)]
        with fn.loop("0", str(n), vectorize=True) as i:
            vals = []
            for j, t in enumerate(tables):
                if t == "same":
                    vals.append(fn.load_at("float", k.ins[j], i))
                elif t == "scalar":
                    vals.append(scalars[j])
                else:
                    vals.append(fn.load_at("float", k.ins[j], fn.load_at("i32", t, i)))
            fn.store_at("float", kernels.binary(fn, name, vals[0], vals[1]), k.out, i)


def _rows_cols(shape) -> tuple[int, int]:
    cols = int(shape[-1]) if len(shape) else 1
    return int(np.prod(shape)) // max(cols, 1), cols


@lowering("softmax", "log_softmax")
class Softmax(OpLowering):
    """Over the last axis: max, exp(x - max), sum, then divide (or x - max - log sum)."""

    def regions(self, node, in_shapes, out_shape):
        return [Region("acc", "float", 2)]

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        rows, cols = _rows_cols(k.out_shape)
        log = k.node.op == "log_softmax"
        mx, sm = k.r["acc"], fn.gep("float", k.r["acc"], 1)
        with fn.loop("0", str(rows), hint="row") as r:
            base = fn.iop("mul", r, str(cols))
            x = fn.gep("float", k.ins[0], base)
            y = fn.gep("float", k.out, base)
            fn.store("float", fn.load("float", x), mx)
            with fn.loop("1", str(cols), hint="max") as i:
                v, cur = fn.load_at("float", x, i), fn.load("float", mx)
                fn.store("float", fn.select(fn.fcmp("ogt", v, cur), v, cur), mx)
            m_ = fn.load("float", mx)
            fn.store("float", lit(0.0, "float"), sm)
            with fn.loop("0", str(cols), vectorize=True, hint="exp") as i:
                e = kernels.unary(fn, "exp", fn.fsub(fn.load_at("float", x, i), m_))
                if not log:
                    fn.store_at("float", e, y, i)
                fn.store("float", fn.fadd(fn.load("float", sm), e, fast="reduce"), sm)
            s = fn.load("float", sm)
            if log:
                ls = kernels.unary(fn, "log", s)
                with fn.loop("0", str(cols), vectorize=True, hint="norm") as i:
                    v = fn.fsub(fn.fsub(fn.load_at("float", x, i), m_, fast=False), ls, fast=False)
                    fn.store_at("float", v, y, i)
            else:
                with fn.loop("0", str(cols), vectorize=True, hint="norm") as i:
                    fn.store_at("float", fn.fdiv(fn.load_at("float", y, i), s, fast=False), y, i)


@lowering("dense")
class Dense(OpLowering):
    def emit(self, k: Kernel) -> None:
        w = np.asarray(k.node.params["weight"], np.float32)
        if w.ndim != 2 or w.shape[1] != k.in_size:
            raise ValueError(f"weight shape {w.shape} does not fit input size {k.in_size}")
        wp, mp = kernels.padded_rows(w)
        tile = kernels.tile_width(k.options)
        wty = kernels.weight_type(k.options)
        wt = kernels.tiled_weights(k.m, f"dense_{k.node.id}_w", wp, tile, wty)
        bias = None
        if "bias" in k.node.params:
            bias = k.m.const_array(f"dense_{k.node.id}_b", kernels.padded_vec(np.asarray(k.node.params["bias"])))
        kernels.matvec(k.fn, k.out, mp, [(wt, k.ins[0], k.in_size)], bias, tile, wty)


# -------------------------------------------------------------------------------- recurrent
# Gate arithmetic is plain IEEE float32, one rounding per operation like numpy (no FMA contraction,
# no reassociation): recurrent models amplify rounding differences, and this keeps the compiled
# model within 1e-5 of the reference. The loops still vectorise (no reductions in them).
def ew_add(fn, a, b):
    return fn.fadd(a, b, fast=False)


def ew_sub(fn, a, b):
    return fn.fsub(a, b, fast=False)


def ew_mul(fn, a, b):
    return fn.fmul(a, b, fast=False)


class _Recurrent(OpLowering):
    """Float GRU/LSTM: the gates whose two projections are simply added (GRU r and z, all four LSTM
    gates) are one matvec over both sources, x then h, into `gi` (bias b_ih + b_hh): their weights
    stream once per frame through one register tile per output block. The int8 subclasses keep
    the two projections apart (`fused = False`: each has its own activation scale)."""

    gates = 3
    fused = True

    def _hid(self, node) -> int:
        return int(node.attrs["hidden_size"])

    def _check(self, node, in_size):
        hid, g = self._hid(node), self.gates
        shapes = {"w_ih": (g * hid, in_size), "w_hh": (g * hid, hid), "b_ih": (g * hid,), "b_hh": (g * hid,)}
        for key, shape in shapes.items():
            if tuple(np.shape(node.params[key])) != shape:
                raise ValueError(f"{key} has shape {np.shape(node.params[key])}, expected {shape}")
        for key in ("gate_activation", "activation"):
            fname = node.attrs.get(key, "sigmoid" if key == "gate_activation" else "tanh")
            if fname not in kernels.UNARY_NAMES:
                raise ValueError(f"unknown {key} {fname!r}")

    def regions(self, node, in_shapes, out_shape):
        self._check(node, int(np.prod(in_shapes[0])))
        hp = pad(self._hid(node))
        regs = [
            Region("gi", "float", self.gates * hp),
            Region("gh", "float", self.gates * hp),
            Region("h", "float", hp),
        ]
        if len(node.inputs) > 1:
            regs.append(Region("last", "i32", 1))
        return regs

    def _weights(self, k: Kernel, key: str, rows: slice | None = None, blocks: int | None = None):
        w = np.asarray(k.node.params[key], np.float32)
        if rows is not None:
            w = w[rows]
        wp, mp = kernels.padded_rows(w, blocks or self.gates)
        tag = f"{k.node.op}_{k.node.id}_{key}_{rows.start if rows else 0}"
        return (kernels.tiled_weights(k.m, tag, wp, kernels.tile_width(k.options), kernels.weight_type(k.options)),
                wp.shape[0])

    def _bias(self, k: Kernel, keys: tuple[str, ...], rows: slice | None = None, blocks: int | None = None) -> str:
        b = sum(np.asarray(k.node.params[key], np.float32) for key in keys).astype(np.float32)
        if rows is not None:
            b = b[rows]
        tag = f"{k.node.op}_{k.node.id}_{'_'.join(keys)}_{rows.start if rows else 0}"
        return k.m.const_array(tag, kernels.padded_vec(b, blocks or self.gates))

    def _project(self, k: Kernel, dst: str, key: str, src: str, src_size: int, rows: slice | None = None,
                 blocks: int | None = None) -> None:
        """dst = W[rows] @ src + b[rows] for W = w_ih or w_hh (b = b_ih or b_hh), padded per gate."""
        w, mp = self._weights(k, key, rows, blocks)
        bias = self._bias(k, ("b_ih" if key == "w_ih" else "b_hh",), rows, blocks)
        kernels.matvec(k.fn, dst, mp, [(w, src, src_size)], bias, kernels.tile_width(k.options),
                       kernels.weight_type(k.options))

    def _project_both(self, k: Kernel, dst: str, rows: slice | None = None, blocks: int | None = None) -> None:
        """dst = (b_ih + b_hh)[rows] + W_ih[rows] @ x + W_hh[rows] @ h in one pass (float only)."""
        wi, mp = self._weights(k, "w_ih", rows, blocks)
        wh, _ = self._weights(k, "w_hh", rows, blocks)
        bias = self._bias(k, ("b_ih", "b_hh"), rows, blocks)
        srcs = [(wi, k.ins[0], k.in_size), (wh, k.r["h"], self._hid(k.node))]
        kernels.matvec(k.fn, dst, mp, srcs, bias, kernels.tile_width(k.options), kernels.weight_type(k.options))

    def _pre(self, k: Kernel, q: int, i: str) -> str:
        """Gate q's pre-activation at lane i: gi + gh, or gi alone when both projections were fused."""
        fn, hp = k.fn, pad(self._hid(k.node))
        iq = fn.iop("add", i, str(q * hp)) if q else i
        if self.fused:
            return fn.load_at("float", k.r["gi"], iq)
        return ew_add(fn, fn.load_at("float", k.r["gi"], iq), fn.load_at("float", k.r["gh"], iq))

    def _trigger(self, k: Kernel, zero_regions: list[str]) -> None:
        """After the output is written: on a 1 -> 0 trigger transition, zero the state."""
        fn = k.fn
        if len(k.ins) < 2:
            return
        sig = fn.fcmp("une", fn.load_at("float", k.ins[1], 0), lit(0.0, "float"))
        last = fn.load("i32", k.r["last"])
        fired = fn.iop("and", fn.icmp("eq", last, "1"), fn.assign(f"xor i1 {sig}, true"), "i1")
        fn.store("i32", fn.assign(f"zext i1 {sig} to i32"), k.r["last"])
        hp = pad(self._hid(k.node))
        with fn.if_(fired, "reset"):
            for r in zero_regions:
                fn.memset0(k.r[r], str(4 * hp))


@lowering("gru")
class Gru(_Recurrent):
    gates = 3

    def regions(self, node, in_shapes, out_shape):
        regs = super().regions(node, in_shapes, out_shape)
        if not node.attrs.get("linear_before_reset", True):
            regs.append(Region("rh", "float", pad(self._hid(node))))
        return regs

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        hid = self._hid(k.node)
        hp = pad(hid)
        gate = k.node.attrs.get("gate_activation", "sigmoid")
        act = k.node.attrs.get("activation", "tanh")
        gi, gh, h = k.r["gi"], k.r["gh"], k.r["h"]
        lbr = k.node.attrs.get("linear_before_reset", True)
        n_rows = slice(2 * hid, 3 * hid)
        if self.fused:  # r and z over x and h in one pass; n's two halves apart (r scales one)
            self._project_both(k, gi, slice(0, 2 * hid), 2)
            self._project(k, fn.gep("float", gi, 2 * hp), "w_ih", k.ins[0], k.in_size, n_rows, 1)
        else:
            self._project(k, gi, "w_ih", k.ins[0], k.in_size)
        if lbr:
            if self.fused:
                self._project(k, fn.gep("float", gh, 2 * hp), "w_hh", h, hid, n_rows, 1)
            else:
                self._project(k, gh, "w_hh", h, hid)
            with fn.loop("0", str(hp), vectorize=True, hint="gru") as i:
                i3 = fn.iop("add", i, str(2 * hp))
                r = kernels.unary(fn, gate, self._pre(k, 0, i))
                z = kernels.unary(fn, gate, self._pre(k, 1, i))
                nn = kernels.unary(
                    fn,
                    act,
                    ew_add(fn, fn.load_at("float", gi, i3), ew_mul(fn, r, fn.load_at("float", gh, i3))),
                )
                self._update(k, i, z, nn)
        else:  # ONNX default: the reset gate scales h before the recurrent matmul
            if not self.fused:
                self._project(k, gh, "w_hh", h, hid, slice(0, 2 * hid), 2)
            rh = k.r["rh"]
            with fn.loop("0", str(hp), vectorize=True, hint="gru_r") as i:
                r = kernels.unary(fn, gate, self._pre(k, 0, i))
                z = kernels.unary(fn, gate, self._pre(k, 1, i))
                fn.store_at("float", ew_mul(fn, r, fn.load_at("float", h, i)), rh, i)
                fn.store_at("float", z, gh, i)  # keep z where r's sum was
            self._project(k, fn.gep("float", gh, 2 * hp), "w_hh", rh, hid, n_rows, 1)
            with fn.loop("0", str(hp), vectorize=True, hint="gru_n") as i:
                i3 = fn.iop("add", i, str(2 * hp))
                z = fn.load_at("float", gh, i)
                nn = kernels.unary(fn, act, ew_add(fn, fn.load_at("float", gi, i3), fn.load_at("float", gh, i3)))
                self._update(k, i, z, nn)
        self._trigger(k, ["h"])

    def _update(self, k: Kernel, i: str, z: str, nn: str) -> None:
        """h' = (1 - z) * n + z * h, into the output and the state."""
        fn = k.fn
        hv = fn.load_at("float", k.r["h"], i)
        out = ew_add(fn, ew_mul(fn, ew_sub(fn, lit(1.0, "float"), z), nn), ew_mul(fn, z, hv))
        fn.store_at("float", out, k.out, i)
        fn.store_at("float", out, k.r["h"], i)


@lowering("lstm")
class Lstm(_Recurrent):
    gates = 4

    def regions(self, node, in_shapes, out_shape):
        return super().regions(node, in_shapes, out_shape) + [Region("c", "float", pad(self._hid(node)))]

    def emit(self, k: Kernel) -> None:
        fn = k.fn
        hid = self._hid(k.node)
        hp = pad(hid)
        gate = k.node.attrs.get("gate_activation", "sigmoid")
        act = k.node.attrs.get("activation", "tanh")
        gi, h, c = k.r["gi"], k.r["h"], k.r["c"]
        if self.fused:  # all four gates over x and h in one pass
            self._project_both(k, gi)
        else:
            self._project(k, gi, "w_ih", k.ins[0], k.in_size)
            self._project(k, k.r["gh"], "w_hh", h, hid)
        with fn.loop("0", str(hp), vectorize=True, hint="lstm") as i:
            g = [self._pre(k, q, i) for q in range(4)]
            ig, fg = kernels.unary(fn, gate, g[0]), kernels.unary(fn, gate, g[1])
            cand, og = kernels.unary(fn, act, g[2]), kernels.unary(fn, gate, g[3])
            cn = ew_add(fn, ew_mul(fn, fg, fn.load_at("float", c, i)), ew_mul(fn, ig, cand))
            hn = ew_mul(fn, og, kernels.unary(fn, act, cn))
            fn.store_at("float", cn, c, i)
            fn.store_at("float", hn, h, i)
            fn.store_at("float", hn, k.out, i)
        self._trigger(k, ["h", "c"])


# -------------------------------------------------------------------------------- VAD
@lowering("vad")
class Vad(OpLowering):
    """ELL's VAD in float64, operation for operation like core/features/vad.py."""

    def regions(self, node, in_shapes, out_shape):
        vad_config(node)  # validates
        float(node.attrs["frame_duration"])
        return [
            Region("floor", "double", 1, init=0.1),
            Region("last", "double", 1),
            Region("level", "double", 1),
            Region("frame", "i64", 1),
            Region("signal", "i32", 1),
        ] + ([] if reset_config(node).is_ell else [Region("hang", "i32", 1)])

    def emit(self, k: Kernel) -> None:
        fn, d = k.fn, "double"
        c = vad_config(k.node)
        n = k.in_size
        fd = float(k.node.attrs["frame_duration"])
        w = k.m.const_array(f"vad_weights_{n}", cmessage_weights(n), d)
        lv = k.r["level"]
        fn.store(d, lit(0.0, d), lv)
        with fn.loop("0", str(n), hint="vad") as i:
            x = fn.assign(f"fpext float {fn.load_at('float', k.ins[0], i)} to double")
            prod = fn.fmul(x, fn.load_at(d, w, i), d, fast=False)
            fn.store(d, fn.fadd(fn.load(d, lv), prod, d, fast=False), lv)
        level = fn.fdiv(fn.load(d, lv), lit(float(n), d), d, fast=False)
        frame = fn.load("i64", k.r["frame"])
        fn.store("i64", fn.iop("add", frame, "1", "i64"), k.r["frame"])
        t = fn.fmul(fn.assign(f"sitofp i64 {frame} to double"), lit(fd, d), d, fast=False)
        dt = fn.fsub(t, fn.load(d, k.r["last"]), d, fast=False)
        floor = fn.load(d, k.r["floor"])

        def f(v):
            return lit(float(v), d)

        diff = fn.fsub(level, floor, d, fast=False)
        # level < floor: max(floor + dt / tau_down * (level - floor), level)
        a = fn.fadd(floor, fn.fmul(fn.fdiv(dt, f(c.tau_down), d, fast=False), diff, d, fast=False), d, fast=False)
        a = fn.select(fn.fcmp("ogt", level, a, d), level, a, d)
        # level > large_input * floor: min(floor + gain_att * dt / tau_up * (level - floor), level)
        q = fn.fdiv(fn.fmul(f(c.gain_att), dt, d, fast=False), f(c.tau_up), d, fast=False)
        b = fn.fadd(floor, fn.fmul(q, diff, d, fast=False), d, fast=False)
        b = fn.select(fn.fcmp("olt", level, b, d), level, b, d)
        # otherwise: min(floor + dt / tau_up * (level - floor), level)
        e = fn.fadd(floor, fn.fmul(fn.fdiv(dt, f(c.tau_up), d, fast=False), diff, d, fast=False), d, fast=False)
        e = fn.select(fn.fcmp("olt", level, e, d), level, e, d)
        is_b = fn.fcmp("ogt", level, fn.fmul(f(c.large_input), floor, d, fast=False), d)
        new = fn.select(fn.fcmp("olt", level, floor, d), a, fn.select(is_b, b, e, d), d)
        sig = fn.load("i32", k.r["signal"])
        on = fn.iop(
            "and",
            fn.fcmp("ogt", level, fn.fmul(f(c.threshold_up), new, d, fast=False), d),
            fn.fcmp("ogt", level, f(c.level_threshold), d),
            "i1",
        )
        sig = fn.select(on, "1", sig, "i32")
        off = fn.fcmp("olt", level, fn.fmul(f(c.threshold_down), new, d, fast=False), d)
        sig = fn.select(off, "0", sig, "i32")
        fn.store(d, new, k.r["floor"])
        fn.store(d, t, k.r["last"])
        fn.store("i32", sig, k.r["signal"])
        rc = reset_config(k.node)
        if not rc.is_ell:  # trigger shaping like core.features.vad.reset_trigger
            hang = fn.load("i32", k.r["hang"])
            on = fn.icmp("ne", sig, "0")
            held = fn.iop("or", on, fn.icmp("sgt", hang, "0"), "i1")
            dec = fn.select(fn.icmp("sgt", hang, "0"), fn.iop("sub", hang, "1"), "0", "i32")
            fn.store("i32", fn.select(on, str(int(rc.hold_frames)), dec, "i32"), k.r["hang"])
            if rc.reset_on == "onset":
                held = fn.assign(f"xor i1 {held}, true")
            sig = fn.assign(f"zext i1 {held} to i32")
        fn.store_at("float", fn.assign(f"sitofp i32 {sig} to float"), k.out, 0)
