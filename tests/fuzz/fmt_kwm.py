"""Our model file (.kwm: zip of model.json + .npy arrays) and the .npy arrays inside it.

The kwm loader also runs the loaded graph for a few frames: an absurd model must be refused at
load, so anything that loads and then fails to run is a failure too.
"""

from __future__ import annotations

import io
import random

import numpy as np

from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node, chain
from core.graph.validate import read_npy
from core.models import DEFAULT_FEATURIZER, load_model

from .formats import Format, register
from .mutate import mutate_json, mutate_npy, mutate_zip


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(0, 0.3, shape).astype(np.float32)


def small_graphs() -> list[Graph]:
    """A recurrent classifier with a VAD reset, and a network of the streaming nn ops."""
    r = np.random.default_rng(0)
    vad = {"tau_up": 1.54, "tau_down": 0.074326, "large_input": 2.40016, "gain_att": 0.002885,
           "threshold_up": 3.552713, "threshold_down": 0.931252, "level_threshold": 0.007885,
           "frame_duration": 0.032, "reset_on": "onset", "hold_frames": 3}
    rnn = Graph([
        Node("in", "input", [], {"size": 6}),
        Node("vad", "vad", ["in"], vad),
        Node("mean", "constant", [], {}, {"value": _w(r, 6)}),
        Node("sub", "binary", ["in", "mean"], {"fn": "sub"}),
        Node("gru", "gru", ["sub", "vad"], {"hidden_size": 4, "linear_before_reset": True},
             {"w_ih": _w(r, 12, 6), "w_hh": _w(r, 12, 4), "b_ih": _w(r, 12), "b_hh": _w(r, 12)}),
        Node("lstm", "lstm", ["gru", "vad"], {"hidden_size": 3},
             {"w_ih": _w(r, 12, 4), "w_hh": _w(r, 12, 3), "b_ih": _w(r, 12), "b_hh": _w(r, 12)}),
        Node("head", "dense", ["lstm"], {}, {"weight": _w(r, 5, 3), "bias": _w(r, 5)}),
        Node("soft", "softmax", ["head"]),
        Node("out", "output", ["soft"]),
    ], {"kind": "classifier", "categories": ["a", "b", "c", "d", "e"], "sample_rate": 16000, "hop_length": 512})
    nn = chain([
        ("input", {"size": 12}, {}),
        ("conv", {"in_channels": 3, "in_width": 4, "out_channels": 2, "kernel_t": 2, "kernel_w": 2,
                  "pad_w": [0, 1]}, {"weight": _w(r, 2, 3, 2, 2), "bias": _w(r, 2)}),
        ("pool", {"in_channels": 2, "in_width": 4, "kernel_t": 2, "kernel_w": 2, "kind": "avg"}, {}),
        ("layer_norm", {"n_axes": 1, "epsilon": 1e-5}, {"scale": _w(r, 3), "bias": _w(r, 3)}),
        ("dense_nd", {}, {"weight": _w(r, 5, 3)}),
        ("reshape", {"shape": [10]}, {}),
        ("delay", {"frames": 2}, {}),
        ("time_mean", {"warmup": 1}, {}),
        ("clip", {"min": -1.0, "max": 1.0}, {}),
        ("leaky_relu", {"alpha": 0.1}, {}),
        ("slice", {"axes": [0], "starts": [1], "ends": [None], "steps": [1]}, {}),
        ("pad", {"pads": [[1, 0]], "value": 0.5}, {}),
        ("dense", {}, {"weight": _w(r, 3, 10), "bias": _w(r, 3)}),
        ("log_softmax", {}, {}),
        ("output", {}, {}),
    ], {"kind": "classifier"})
    return [rnn, nn]


def quantized_graph() -> Graph:
    """The recurrent graph of small_graphs with int8 GRU, LSTM and dense nodes (core.quantize)."""
    from core.quantize import calibrate, quantize_graph

    rnn = small_graphs()[0]
    frames = np.random.default_rng(1).normal(0, 1, (20, 6)).astype(np.float32)
    return quantize_graph(rnn, calibrate(rnn, [frames]))


def kwm_seeds() -> list[bytes]:
    return [DEFAULT_FEATURIZER.read_bytes()] + [modelfile.to_bytes(g) for g in small_graphs() + [quantized_graph()]]


def load_and_run(path: str) -> None:
    graph = load_model(path)
    rt = Interpreter(graph)
    rt.run(np.random.default_rng(0).normal(0, 0.1, (3, rt.input_size)).astype(np.float32))


def mutate_kwm(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    return mutate_zip(rng, data, seeds, {"json": mutate_json, "npy": mutate_npy})


def npy_seeds() -> list[bytes]:
    out = []
    for g in small_graphs():
        for n in g.nodes:
            for a in n.params.values():
                b = io.BytesIO()
                np.lib.format.write_array(b, a, version=(1, 0) if len(out) % 2 else (2, 0), allow_pickle=False)
                out.append(b.getvalue())
    b = io.BytesIO()
    np.lib.format.write_array(b, quantized_graph().node("gru").params["w_ih"], allow_pickle=False)
    return out[:8] + [b.getvalue()]  # and an int8 weight array


def load_npy(path: str) -> None:
    with open(path, "rb") as f:
        read_npy(f.read(), path)


register(Format("kwm", ".kwm", kwm_seeds, load_and_run, mutate_kwm))
register(Format("npy", ".npy", npy_seeds, load_npy, mutate_npy))
