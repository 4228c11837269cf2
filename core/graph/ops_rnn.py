"""Recurrent ops (GRU, LSTM) with an optional VAD reset trigger, and the VAD op itself.

Weights use PyTorch's layout: GRU gates stacked (r, z, n), LSTM gates (i, f, g, o);
W_ih (G*H, in), W_hh (G*H, H), b_ih and b_hh (G*H,). A second input, when present, is the reset
trigger: when it goes 1 -> 0 the state is zeroed after that frame's output (effective next frame).
The VAD node emits ELL's 0/1 voice signal, or, with attrs reset_on / hold_frames
(core.features.vad.ResetConfig), a trigger shaped from it (hangover, reset at word onset).
"""

from __future__ import annotations

import numpy as np

from core.features.vad import RESET_ON, ResetConfig, VadConfig, VadTracker, reset_trigger
from core.graph.ops import _UNARY, _p, a_bool, a_choice, a_int, a_num, check_param, op


def _rnn_shape(node, s):
    """(in,) -> (hidden,); PyTorch-layout weights for `gates` gates (3 GRU, 4 LSTM)."""
    hid = int(node.attrs["hidden_size"])
    g = 3 if node.op in ("gru", "gru_q8") else 4
    if len(s[0]) != 1:
        raise ValueError(f"input {s[0]} is not a vector")
    check_param(node, "w_ih", (g * hid, s[0][0]))
    check_param(node, "w_hh", (g * hid, hid))
    check_param(node, "b_ih", (g * hid,))
    check_param(node, "b_hh", (g * hid,))
    return (hid,)


_RNN_ATTRS = {
    "hidden_size": a_int(1, 1 << 14),
    "gate_activation": a_choice(_UNARY, required=False),
    "activation": a_choice(_UNARY, required=False),
    "linear_before_reset": a_bool(required=False),
}


def _gate(node):
    return _UNARY[node.attrs.get("gate_activation", "sigmoid")]


def _trigger_fired(state, xs, t) -> bool:
    if len(xs) < 2:
        return False
    sig = int(xs[1][t].reshape(-1)[0] != 0)
    fired = state["last_signal"] == 1 and sig == 0
    state["last_signal"] = sig
    return fired


def _gru_state(node, s):
    return {"h": np.zeros(int(node.attrs["hidden_size"]), np.float32), "last_signal": 0}


def _float_rec(node):
    """W_hh[rows] @ v + b_hh[rows]: the recurrent matmul of a float GRU/LSTM."""
    w_hh, b_hh = _p(node, "w_hh"), _p(node, "b_hh")
    return lambda v, rows: w_hh[rows] @ v + b_hh[rows]


@op("gru", _rnn_shape, _gru_state, arity=(1, 2), attrs=_RNN_ATTRS)
def _gru(node, xs, state):
    gi = xs[0] @ _p(node, "w_ih").T + _p(node, "b_ih")  # (T, 3H), all frames at once
    return gru_steps(node, xs, state, gi, _float_rec(node))


def gru_steps(node, xs, state, gi, rec):
    """The GRU's time loop, given the input projections gi (T, 3H) and rec(v, rows) = the recurrent
    projection of v onto the rows `rows` of W_hh plus b_hh (float or int8 weights, ops_q8)."""
    hid = int(node.attrs["hidden_size"])
    gate, act = _gate(node), _UNARY[node.attrs.get("activation", "tanh")]
    lbr = node.attrs.get("linear_before_reset", True)
    h = state["h"]
    out = np.empty((len(gi), hid), np.float32)
    for t in range(len(gi)):
        if lbr:
            gh = rec(h, slice(None))
            r = gate(gi[t, :hid] + gh[:hid])
            z = gate(gi[t, hid : 2 * hid] + gh[hid : 2 * hid])
            n = act(gi[t, 2 * hid :] + r * gh[2 * hid :])
        else:  # ONNX default: the reset gate scales h before the recurrent matmul
            gh = rec(h, slice(0, 2 * hid))
            r = gate(gi[t, :hid] + gh[:hid])
            z = gate(gi[t, hid : 2 * hid] + gh[hid:])
            n = act(gi[t, 2 * hid :] + rec((r * h).astype(np.float32), slice(2 * hid, 3 * hid)))
        h = ((1 - z) * n + z * h).astype(np.float32)
        out[t] = h
        if _trigger_fired(state, xs, t):
            h = np.zeros_like(h)
    state["h"] = h
    return out


def _lstm_state(node, s):
    hid = int(node.attrs["hidden_size"])
    return {"h": np.zeros(hid, np.float32), "c": np.zeros(hid, np.float32), "last_signal": 0}


@op("lstm", _rnn_shape, _lstm_state, arity=(1, 2), attrs=_RNN_ATTRS)
def _lstm(node, xs, state):
    gi = xs[0] @ _p(node, "w_ih").T + _p(node, "b_ih")  # (T, 4H)
    return lstm_steps(node, xs, state, gi, _float_rec(node))


def lstm_steps(node, xs, state, gi, rec):
    """The LSTM's time loop (see gru_steps)."""
    hid = int(node.attrs["hidden_size"])
    gate, act = _gate(node), _UNARY[node.attrs.get("activation", "tanh")]
    h, c = state["h"], state["c"]
    out = np.empty((len(gi), hid), np.float32)
    for t in range(len(gi)):
        g = gi[t] + rec(h, slice(None))
        i, f = gate(g[:hid]), gate(g[hid : 2 * hid])
        cand, o = act(g[2 * hid : 3 * hid]), gate(g[3 * hid :])
        c = (f * c + i * cand).astype(np.float32)
        h = (o * act(c)).astype(np.float32)
        out[t] = h
        if _trigger_fired(state, xs, t):
            h, c = np.zeros_like(h), np.zeros_like(c)
    state["h"], state["c"] = h, c
    return out


def vad_config(node) -> VadConfig:
    return VadConfig.from_dict({k: node.attrs[k] for k in VadConfig.__dataclass_fields__})


def reset_config(node) -> ResetConfig:
    """The node's reset_on / hold_frames (ELL's offset reset when absent)."""
    return ResetConfig.from_dict(node.attrs)


def _vad_state(node, s):
    return {"tracker": VadTracker(vad_config(node), s[0][0], float(node.attrs["frame_duration"])),
            "reset": reset_config(node), "hang": 0}


def _vad_shape(node, s):
    """(n,) features -> (1,) signal; the tuning and reset attributes make valid configs."""
    _ = vad_config(node), reset_config(node)
    if len(s[0]) != 1:
        raise ValueError(f"input {s[0]} is not a vector")
    return (1,)


_VAD_ATTRS = {k: a_num() for k in VadConfig.__dataclass_fields__} | {
    "frame_duration": a_num(1e-4, 10.0),
    "sample_rate": a_num(1.0, 384000.0, required=False),
    "reset_on": a_choice(RESET_ON, required=False),
    "hold_frames": a_int(0, 10000, required=False),
}


@op("vad", _vad_shape, _vad_state, attrs=_VAD_ATTRS)
def _vad(node, xs, state):
    """The 0/1 voice signal (ELL), or with reset_on / hold_frames the trigger shaped from it."""
    tracker: VadTracker = state["tracker"]
    _, _, signals = tracker.trace(xs[0])
    if not state["reset"].is_ell:
        signals, state["hang"] = reset_trigger(signals, state["reset"], state["hang"])
    return signals.astype(np.float32)[:, None]
