"""ONNX handlers for ops over the time axis: GRU/LSTM, Conv and pooling (streamed with a state
buffer), reductions over time (a running mean), and taking the last time step.

Our frame k stands for the model's output at time step k (ONNX run over frames 0..k), so:
- GRU/LSTM (forward) carry h (and c) from call to call; Y is the current step, Y_h is the same
  value (the last step so far). Reverse and bidirectional RNNs need the future: refused.
- Conv/pool over time with pads (before, after) and kernel reach R = (kernel-1)*dilation:
  causal (before = R, after = 0) streams exactly; before < R adds R - before frames of latency
  ('valid' convs), after > 0 means look-ahead: allowed only if a later Slice drops those steps
  again (PyTorch's `Conv1d(padding=R)` then `x[..., :-R]`), otherwise refused where the sequence
  is reduced or output. A stride over time changes the frame rate: refused.
- Slice over time [s:e]: s > 0 adds s frames of latency; cutting steps off the end first uses up
  look-ahead, then becomes a `delay` node. Branches with different latencies are lined up with
  `delay` before they are added or concatenated.
- Gather/Slice of the last step ([-1], [-1:]) is the current frame; other steps: refused.
- ReduceMean / GlobalAveragePool over time: the running mean since the last reset (`time_mean`).
- A model exported with a time axis of fixed length 1 (a "step model", e.g. PyTorch 0.3 era
  files run one frame per call) reduces over that one step: reductions and last-step picks over
  time are the identity, and its RNNs and convs still carry state between calls.
"""

from __future__ import annotations

import math

import numpy as np

from core.importers.onnx_ops import _BIG, FrameOps, _axis
from core.importers.onnx_values import TIME, Bad, Const, StateIn, Stream, size

_ACT = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "HardSigmoid": "hard_sigmoid"}
_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min"}


class TemporalOps(FrameOps):
    # ------------------------------------------------------------------ the last time step
    def last_step(self, s: Stream, keep_axis: bool) -> Stream:
        """The tensor at the newest time step (time axis dropped, or kept with length 1)."""
        if s.tail and not self.step_model:
            self.fail(
                f"takes the last time step, but the model pads {s.tail} step(s) past the newest frame "
                "(look-ahead, from a convolution padded on both sides in time): pad convolutions "
                "causally (only before) to stream the model"
            )
        dims = list(s.dims)
        if keep_axis:
            dims[s.t] = 1
        else:
            del dims[s.t]
        return s.with_(dims=tuple(dims), t=None)

    def drop_time(self, s: Stream, keep_axis: bool, why: str) -> Stream:
        if not self.step_model:
            self.fail(f"{why}: only possible when the model's time axis has length 1")
        return self.last_step(s, keep_axis)

    def slice_time(self, s: Stream, st: int, en: int, sp: int) -> Stream:
        if sp != 1:
            self.fail("a Slice with a step over the time axis changes the frame rate: not streamable")
        big = en >= TIME or en >= _BIG or (self.static_t is not None and en >= self.static_t)
        if st < 0:
            if st == -1 and big:
                return self.last_step(s, keep_axis=True)
            self.fail(f"Slice [{st}:] takes several last time steps: not streamable (only [-1:] is)")
        if self.step_model:
            if st == 0:
                return s
            self.fail("Slice drops the only time step")
        tail = s.tail
        if not big:
            if en < 0:
                tail += en
            elif self.static_t is not None:
                tail -= self.static_t - en
            else:
                self.fail(f"Slice ends at time step {en}: not streamable")
        delay = s.delay + st
        if tail < 0:  # the sequence now ends -tail steps before the newest frame: a delay line
            s = s.with_(node=self.add("delay", [s.node], {"frames": -tail}))
            delay, tail = delay - tail, 0
        return s.with_(delay=delay, tail=tail)

    def gather_time(self, s: Stream, idx: np.ndarray) -> Stream:
        if idx.size != 1:
            self.fail("Gather of several time steps is not streamable")
        k = int(idx.reshape(-1)[0])
        if k == -1 or (self.static_t is not None and k == self.static_t - 1) or (self.step_model and k == 0):
            return self.last_step(s, keep_axis=idx.ndim == 1)
        self.fail(f"Gather picks time step {k}: only the last step (-1) is streamable")

    def time_reduce(self, s: Stream, kind: str) -> Stream:
        """Reduce the time axis (kept with length 1): running mean since reset; identity for step models."""
        if self.step_model:
            return self.last_step(s, keep_axis=True)
        if kind != "mean":
            self.fail(f"a {kind} over the time axis is not streamable (a mean is: it becomes a running mean)")
        if s.tail:
            self.last_step(s, keep_axis=True)  # raises the look-ahead error
        dims = list(s.dims)
        dims[s.t] = 1
        return self.emit("time_mean", [s.node], {"warmup": s.delay}, None, s.with_(dims=tuple(dims), t=None))

    # ------------------------------------------------------------------ reductions
    def _op_ReduceMean(self, node, ins, at):
        s = self.stream(ins[0])
        kind = _REDUCE[node.op_type]
        axes = self._axes_arg(ins, at)
        if not axes:
            if at.get("noop_with_empty_axes", 0):
                return [s]
            axes = list(range(s.rank))
        axes = sorted({_axis(a, s.rank) for a in axes})
        out = self._reduce_frame(s, [a for a in axes if a != s.t], kind)
        if s.t is not None and s.t in axes:
            out = self.time_reduce(out, kind)
        if not at.get("keepdims", 1):
            dims = tuple(d for k, d in enumerate(out.dims) if k not in axes)
            t = None if out.t is None else out.t - sum(1 for a in axes if a < out.t)
            out = out.with_(dims=dims, t=t)
        return [out]

    _op_ReduceSum = _op_ReduceMax = _op_ReduceMin = _op_ReduceMean

    def _reduce_frame(self, s: Stream, axes: list[int], kind: str) -> Stream:
        if all(s.dims[a] == 1 for a in axes):
            return s
        dims = list(s.dims)
        for a in axes:
            dims[a] = 1
        axes = [a for a in axes if s.dims[a] != 1]
        nid, fa = self.view(s, axes)
        return self.emit(
            "reduce",
            [nid],
            {"axes": fa, "kind": kind},
            None,
            s.with_(dims=tuple(dims)),
        )

    def _op_GlobalAveragePool(self, node, ins, at):
        s = self.stream(ins[0])
        kind = "mean" if node.op_type == "GlobalAveragePool" else "max"
        spatial = list(range(2, s.rank))
        out = self._reduce_frame(s, [a for a in spatial if a != s.t], kind)
        if s.t is not None and s.t in spatial:
            out = self.time_reduce(out, kind)
        return [out]

    _op_GlobalMaxPool = _op_GlobalAveragePool

    # ------------------------------------------------------------------ recurrent
    def _op_GRU(self, node, ins, at):
        return self.rnn(node, ins, at, "gru" if node.op_type == "GRU" else "lstm")

    _op_LSTM = _op_GRU

    def _zero_or_state(self, v, what: str) -> None:
        if v is None or isinstance(v, StateIn):
            return
        if isinstance(v, Const):
            if np.any(np.asarray(v.value) != 0):
                self.fail(f"a non-zero constant {what} is not supported (our RNNs start from zeros)")
            return
        self.fail(f"the {what} depends on the model input; only zeros or a state input are supported")

    def rnn(self, node, ins, at, kind: str):
        x = self.stream(ins[0], "the RNN input")
        gates = 3 if kind == "gru" else 4
        if at.get("direction", "forward") != "forward":
            self.fail(f"a {at['direction']} RNN needs the whole sequence in advance: not streamable")
        layout = int(at.get("layout", 0))
        if x.rank != 3 or x.t != layout:
            self.fail(f"the RNN's sequence axis (ONNX axis {layout}) is not the model's time axis")
        if x.delay:
            self.fail(
                f"the RNN input comes {x.delay} frames late (after a convolution that is not padded "
                "causally): pad convolutions causally to stream the model"
            )
        if "clip" in at:
            self.fail("RNN cell clipping is not supported")
        if at.get("input_forget", 0):
            self.fail("LSTM input_forget is not supported")
        w = np.asarray(self.const(ins[1], "W"), np.float32)
        r = np.asarray(self.const(ins[2], "R"), np.float32)
        if w.ndim != 3 or w.shape[0] != 1 or r.ndim != 3:
            self.fail(f"unexpected weight shapes W {w.shape}, R {r.shape}")
        hid = int(at.get("hidden_size", r.shape[-1]))
        g_h = gates * hid
        if w.shape[1] != g_h or r.shape[1:] != (g_h, hid) or size(x.frame_dims) != w.shape[2]:
            self.fail(
                f"weights W {w.shape}, R {r.shape} do not fit hidden size {hid} and input "
                f"{self._shape_str(x)}"
            )
        b = (
            np.asarray(self.const(ins[3], "B"), np.float32).reshape(-1)
            if len(ins) > 3 and ins[3] is not None
            else np.zeros(2 * g_h, np.float32)
        )
        if len(ins) > 4 and isinstance(ins[4], Stream):
            self.fail("sequence_lens from the model input is not supported")
        self._zero_or_state(ins[5] if len(ins) > 5 else None, "initial_h")
        if kind == "lstm":
            self._zero_or_state(ins[6] if len(ins) > 6 else None, "initial_c")
            if len(ins) > 7 and ins[7] is not None and np.any(self.const(ins[7], "the peepholes P") != 0):
                self.fail("LSTM peepholes are not supported")
        gate, act = self._activations(at, kind)
        # ONNX stacks GRU gates (z, r, h) and LSTM gates (i, o, f, c); ours: (r, z, n), (i, f, g, o)
        order = [1, 0, 2] if kind == "gru" else [0, 2, 3, 1]
        rows = np.concatenate([np.arange(k * hid, (k + 1) * hid) for k in order])
        params = {"w_ih": w[0][rows], "w_hh": r[0][rows], "b_ih": b[:g_h][rows], "b_hh": b[g_h:][rows]}
        attrs = {"hidden_size": hid, "gate_activation": gate, "activation": act}
        if kind == "gru":
            attrs["linear_before_reset"] = bool(at.get("linear_before_reset", 0))
        nid = self.add(kind, [self.as_shape(x.node, (w.shape[2],))], attrs, params)
        y_dims = (TIME, 1, 1, hid) if layout == 0 else (1, TIME, 1, hid)
        y = x.with_(node=nid, dims=y_dims, t=layout)
        if x.tail and not self.step_model:
            y_h = Bad(
                "uses the RNN's final state, but the model pads steps past the newest frame (look-ahead)"
            )
        else:
            y_h = y.with_(dims=(1, 1, hid), t=None)
        return [y, y_h, Bad("the LSTM cell-state output Y_c is not supported")][: len(node.output)]

    def _activations(self, at, kind: str) -> tuple[str, str]:
        names = at.get("activations") or (["Sigmoid", "Tanh"] + (["Tanh"] if kind == "lstm" else []))
        alphas, betas = list(at.get("activation_alpha", [])), list(at.get("activation_beta", []))
        out, k = [], 0
        for name in names:
            if name not in _ACT:
                self.fail(f"RNN activation {name!r} is not supported")
            if name == "HardSigmoid":
                a = alphas[k] if k < len(alphas) else 0.2
                bb = betas[k] if k < len(betas) else 0.5
                k += 1
                if not (np.isclose(a, 0.2) and np.isclose(bb, 0.5)):
                    self.fail("RNN HardSigmoid with alpha/beta other than 0.2/0.5 is not supported")
            out.append(_ACT[name])
        if kind == "lstm" and out[1] != out[2]:
            self.fail("LSTM with different cell and hidden activations is not supported")
        return out[0], out[1]

    # ------------------------------------------------------------------ convolution and pooling
    def _op_Conv(self, node, ins, at):
        s = ins[0] if isinstance(ins[0], Stream) else self.stream(ins[0])
        w = np.asarray(self.const(ins[1], "the Conv weight"), np.float32)
        b = (
            np.asarray(self.const(ins[2], "the Conv bias"), np.float32)
            if len(ins) > 2 and ins[2] is not None
            else None
        )
        return [self.window(s, at, "conv", w, b)]

    def _op_MaxPool(self, node, ins, at):
        s = ins[0] if isinstance(ins[0], Stream) else self.stream(ins[0])
        kind = "max" if node.op_type == "MaxPool" else "avg"
        if any(d != 1 for d in at.get("dilations", [])):
            self.fail("pooling with dilation is not supported")
        return [self.window(s, at, kind)] + [Bad("MaxPool indices are not supported")] * (
            len(node.output) - 1
        )

    _op_AveragePool = _op_MaxPool

    def window(self, s: Stream, at: dict, kind: str, weight=None, bias=None) -> Stream:
        """Conv or pooling over (time, width): see the module docstring for the time rules."""
        if s.rank not in (3, 4):
            self.fail("only 1-D and 2-D convolution and pooling are supported")
        n = s.rank - 2
        spatial = list(range(2, s.rank))
        ks = [int(k) for k in (at.get("kernel_shape") or weight.shape[2:])]
        strides = [int(v) for v in at.get("strides", [1] * n)]
        dil = [int(v) for v in at.get("dilations", [1] * n)]
        pads = [int(v) for v in at.get("pads", [0] * 2 * n)]
        auto = at.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            for i, a in enumerate(spatial):
                if a == s.t:
                    total = (ks[i] - 1) * dil[i]
                else:
                    out = -(-s.dims[a] // strides[i])
                    total = max((out - 1) * strides[i] + (ks[i] - 1) * dil[i] + 1 - s.dims[a], 0)
                lo, hi = total // 2, total - total // 2
                pads[i], pads[i + n] = (lo, hi) if auto == "SAME_UPPER" else (hi, lo)
        elif auto == "VALID":
            pads = [0] * 2 * n
        if s.t == 1:
            self.fail("the time axis is the channel axis of a convolution")
        t_i = spatial.index(s.t) if s.t in spatial else None
        width = [i for i in range(n) if i != t_i]
        if len(width) == 2:
            trivial = [
                i for i in width if s.dims[spatial[i]] == 1 and ks[i] == 1 and pads[i] == pads[i + n] == 0
            ]
            if not trivial:
                self.fail("a 2-D convolution within one frame (time is not one of its axes) is not supported")
            width.remove(trivial[0])
        w_i = width[0] if width else None
        chans = s.dims[1]
        kt, dt, st = (ks[t_i], dil[t_i], strides[t_i]) if t_i is not None else (1, 1, 1)
        kw, dw, sw = (ks[w_i], dil[w_i], strides[w_i]) if w_i is not None else (1, 1, 1)
        pl, pr = (pads[w_i], pads[w_i + n]) if w_i is not None else (0, 0)
        in_width = s.dims[spatial[w_i]] if w_i is not None else 1
        delay, tail, warmup = s.delay, s.tail, 0
        include_pad = bool(at.get("count_include_pad", 0))
        if s.pad_t != (0, 0) and kind == "avg" and not any(pads):
            include_pad = True  # the padded zeros are elements of the padded input: they count
        if s.pad_t != (0, 0) and not (kind == "conv" or (kind == "avg" and include_pad)):
            self.fail(
                "a Pad over the time axis before max pooling, or before average pooling that has "
                "its own padding, is not supported"
            )
        if t_i is not None:
            if st != 1:
                self.fail(
                    f"a stride of {st} over time changes the frame rate: not streamable (use stride 1 "
                    "over time)"
                )
            pb, pe = pads[t_i] + s.pad_t[0], pads[t_i + n] + s.pad_t[1]
            reach = (kt - 1) * dt
            if pb > reach:
                self.fail(f"pads {pb} steps before the first frame, more than its window reaches ({reach})")
            warmup, delay, tail = s.delay, s.delay + reach - pb, s.tail + pe
        attrs = {
            "in_channels": chans,
            "in_width": in_width,
            "kernel_t": kt,
            "kernel_w": kw,
            "dilation_t": dt,
            "dilation_w": dw,
            "stride_w": sw,
            "pad_w": [pl, pr],
            "warmup": warmup,
        }
        ceil = at.get("ceil_mode", 0)
        w_out = (in_width + pl + pr - dw * (kw - 1) - 1) // sw + 1
        if ceil and math.ceil((in_width + pl + pr - dw * (kw - 1) - 1) / sw) + 1 != w_out:
            self.fail("ceil_mode changes the output width: not supported")
        dims = list(s.dims)
        if w_i is not None:
            dims[spatial[w_i]] = w_out
        params = None
        if kind == "conv":
            groups = int(at.get("group", 1))
            wt = weight
            if n == 1:
                wt = wt[:, :, :, None] if t_i is not None else wt[:, :, None, :]
            elif t_i == 1:
                wt = wt.transpose(0, 1, 3, 2)
            elif t_i is None:
                wt = wt.reshape(wt.shape[0], wt.shape[1], 1, kw)
            if chans % groups or wt.shape[1] * groups != chans:
                self.fail(f"weight {weight.shape} does not fit {chans} channels in {groups} groups")
            attrs |= {"out_channels": int(wt.shape[0]), "groups": groups}
            params = {"weight": np.ascontiguousarray(wt)} | ({"bias": bias} if bias is not None else {})
            dims[1] = int(wt.shape[0])
            op = "conv"
        else:
            attrs |= {"kind": kind, "count_include_pad": include_pad}
            op = "pool"
        return self.emit(op, [s.node], attrs, params, s.with_(dims=tuple(dims), delay=delay, tail=tail))
