"""Post-training quantization, a graph pass: dense, GRU and LSTM nodes become their int8 kinds
(core.graph.ops_q8) with int8 weights per output channel and activation scales calibrated on
real feature frames.

    calib = calibrate(classifier, frames_per_clip)        # ranges of every quantized node's inputs
    q = quantize_graph(classifier, calib, act_bits=8)      # a new graph; the original is untouched

Weights: per output row, scale = max|W[row]| / 127, w_q = round(W / scale) (an offline step,
stored in the model; a row of zeros gets scale 1). Activations: symmetric, scale = range / Q with
range the largest |value| the node's input took on the calibration frames (the hidden state's
too for recurrent nodes), Q = 127 (int8) or 32767 (int16, `act_bits=16`). The featurizer, the
gates, cell and hidden state, softmax and every other op stay float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from core.errors import KwsError
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node
from core.graph.ops_q8 import QMAX

QUANTIZABLE = {"dense": "dense_q8", "gru": "gru_q8", "lstm": "lstm_q8"}


@dataclass
class Calibration:
    """Largest |value| seen per quantized node: its input (`x`) and, for GRU/LSTM, its state (`h`)."""

    x: dict[str, float] = field(default_factory=dict)
    h: dict[str, float] = field(default_factory=dict)
    clips: int = 0
    frames: int = 0


def _quantizable(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op in QUANTIZABLE]


def calibrate(graph: Graph, clips: Iterable[np.ndarray], should_stop: Callable[[], bool] | None = None,
              progress: Callable[[int], None] | None = None) -> Calibration:
    """Run the float graph over each clip's (T, input_size) frames, reset per clip."""
    nodes = _quantizable(graph)
    if not nodes:
        raise KwsError("the model has no dense, GRU or LSTM node to quantize")
    rt = Interpreter(graph)
    cal = Calibration({n.id: 0.0 for n in nodes}, {n.id: 0.0 for n in nodes if n.op != "dense"})
    for frames in clips:
        if should_stop and should_stop():
            break
        if len(frames) == 0:
            continue
        rt.reset()
        values = rt.run_all(frames)
        for n in nodes:
            cal.x[n.id] = max(cal.x[n.id], float(np.abs(values[n.inputs[0]]).max()))
            if n.id in cal.h:
                cal.h[n.id] = max(cal.h[n.id], float(np.abs(values[n.id]).max()))
        cal.clips += 1
        cal.frames += len(frames)
        if progress:
            progress(cal.clips)
    if not cal.clips:
        raise KwsError("no calibration frames: every clip was empty or unreadable")
    return cal


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, K) float32 -> (int8 (M, K), float32 scale (M,)): symmetric, per output row."""
    w = np.asarray(w, np.float32)
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _act_scale(peak: float, bits: int) -> float:
    return float(peak / QMAX[bits]) if peak > 0 else 1.0


def quantize_graph(graph: Graph, cal: Calibration, act_bits: int = 8, state_bits: int | None = None) -> Graph:
    """A copy of `graph` with every dense/GRU/LSTM node in its int8 kind (activations of
    `act_bits`, recurrent state of `state_bits`, default the same)."""
    if act_bits not in QMAX or (state_bits or act_bits) not in QMAX:
        raise ValueError(f"activation bits must be 8 or 16, got {act_bits} / {state_bits}")
    sb = state_bits or act_bits
    q = graph.copy()
    for n in _quantizable(q):
        if n.id not in cal.x:
            raise KwsError(f"node {n.id!r} has no calibration range (calibrated on another model?)")
        attrs = dict(n.attrs) | {"x_scale": _act_scale(cal.x[n.id], act_bits), "x_bits": act_bits}
        if n.op == "dense":
            wq, ws = quantize_rows(n.params["weight"])
            params = {"weight": wq, "w_scale": ws}
            if "bias" in n.params:
                params["bias"] = n.params["bias"]
        else:
            wih, sih = quantize_rows(n.params["w_ih"])
            whh, shh = quantize_rows(n.params["w_hh"])
            params = {"w_ih": wih, "w_hh": whh, "w_ih_scale": sih, "w_hh_scale": shh,
                      "b_ih": n.params["b_ih"], "b_hh": n.params["b_hh"]}
            attrs |= {"h_scale": _act_scale(cal.h[n.id], sb), "h_bits": sb}
        n.op, n.attrs, n.params = QUANTIZABLE[n.op], attrs, params
    q.metadata = dict(q.metadata) | {"quantization": {
        "weights": "int8 per output channel", "activation_bits": act_bits, "state_bits": sb,
        "calibration_clips": cal.clips, "calibration_frames": cal.frames}}
    q.validate()
    return q


def weight_bytes(graph: Graph) -> int:
    """Bytes of every parameter array (weights, scales, biases, constants, filterbanks)."""
    return int(sum(p.nbytes for n in graph.nodes for p in n.params.values()))
