"""Warm start: a training run begins from the weights of a trained classifier (`kws train --init`).

Any classifier the app loads (.kwm, ELL .ell, ONNX) whose graph is a stack of GRU or LSTM layers
and a dense layer (optionally with per-feature normalisation before, a VAD beside, softmax after)
becomes the starting point of an RNN spotter: its layer count, width and gate activation replace
the architecture options, its normalisation is kept (the weights expect those inputs), and its
output rows are matched to the new categories by name (core.train.teacher.category_map: new
classes start from a fresh row). Fine-tuning the ELL DevKit this way keeps everything it learnt
from ~50k real recordings and adds what the new data teaches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch

from core.errors import DataError
from core.graph.ir import Graph, Node
from core.train.config import TrainConfig


@dataclass
class RnnLayout:
    op: str  # gru | lstm
    gate_activation: str
    hidden_size: int
    layers: list[dict]  # per layer: w_ih, w_hh, b_ih, b_hh (PyTorch layout)
    head_weight: np.ndarray
    head_bias: np.ndarray
    mean: np.ndarray | None  # per-feature normalisation (x - mean) * scale, when the graph has one
    scale: np.ndarray | None

    @property
    def n_features(self) -> int:
        return int(self.layers[0]["w_ih"].shape[1])


def _const(nodes: dict[str, Node], nid: str) -> np.ndarray | None:
    n = nodes.get(nid)
    return np.asarray(n.params["value"], np.float32) if n is not None and n.op == "constant" else None


def _binary_with_const(nodes: dict[str, Node], node: Node, fn: str) -> tuple[str, np.ndarray] | None:
    """(the other input, the constant) when node is `binary fn` of a stream and a constant."""
    if node.op != "binary" or node.attrs.get("fn") != fn or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if (c := _const(nodes, b)) is not None:
        return a, c
    if fn in ("add", "mul") and (c := _const(nodes, a)) is not None:
        return b, c
    return None


def rnn_layout(graph: Graph, name: str = "model") -> RnnLayout:
    """The weights of a GRU/LSTM + dense classifier graph; DataError naming what does not fit."""
    nodes = {n.id: n for n in graph.nodes}

    def bad(why: str):
        raise DataError(f"{name}: cannot start training from this model: {why} (warm start needs a stack of "
                        "GRU or LSTM layers and a dense layer)")

    outs = [n for n in graph.nodes if n.op == "output"]
    if len(outs) != 1:
        bad(f"it has {len(outs)} outputs")
    node = nodes[outs[0].inputs[0]]
    if node.op in ("softmax", "log_softmax"):
        node = nodes[node.inputs[0]]
    bias = None
    if (hit := _binary_with_const(nodes, node, "add")) is not None:
        node, bias = nodes[hit[0]], hit[1]
    if node.op != "dense":
        bad(f"the output comes from a {node.op!r} node ({node.id}), not a dense layer")
    w = np.asarray(node.params["weight"], np.float32)
    b = np.asarray(node.params.get("bias", np.zeros(w.shape[0])), np.float32)
    if bias is not None:
        b = b + bias.reshape(-1)
    node = nodes[node.inputs[0]]
    rnns = []
    while node.op in ("gru", "lstm"):
        rnns.append(node)
        node = nodes[node.inputs[0]]
    if not rnns:
        bad(f"the dense layer reads a {node.op!r} node ({node.id}), not a GRU or LSTM")
    rnns.reverse()
    first = rnns[0]
    for r in rnns:
        for key, want in (("op", first.op), ("hidden_size", first.attrs["hidden_size"]),
                          ("gate_activation", first.attrs.get("gate_activation", "sigmoid"))):
            got = r.op if key == "op" else r.attrs.get(key, "sigmoid" if key == "gate_activation" else None)
            if got != want:
                bad(f"its recurrent layers differ in {key} ({got!r} vs {want!r})")
        if r.attrs.get("activation", "tanh") != "tanh" or not r.attrs.get("linear_before_reset", True):
            bad(f"layer {r.id} is not a PyTorch-style cell (tanh, reset after the recurrent matmul)")
    gate = first.attrs.get("gate_activation", "sigmoid")
    if gate not in ("sigmoid", "hard_sigmoid") or (gate == "hard_sigmoid" and first.op != "gru"):
        bad(f"{first.op} gates {gate!r} are not supported")
    mean = scale = None
    if (hit := _binary_with_const(nodes, node, "mul")) is not None:
        sub = nodes[hit[0]]
        if (hit2 := _binary_with_const(nodes, sub, "sub")) is None:
            bad(f"node {node.id} scales the input without subtracting a mean first")
        node, scale, mean = nodes[hit2[0]], hit[1].reshape(-1), hit2[1].reshape(-1)
    if node.op != "input":
        bad(f"the first recurrent layer reads a {node.op!r} node ({node.id}), not the input")
    layers = [{k: np.asarray(r.params[k], np.float32) for k in ("w_ih", "w_hh", "b_ih", "b_hh")} for r in rnns]
    return RnnLayout(first.op, gate, int(first.attrs["hidden_size"]), layers, w, b, mean, scale)


def adopt_architecture(cfg: TrainConfig, layout: RnnLayout) -> TrainConfig:
    """The training options with the init model's architecture in place of the given one."""
    return replace(cfg, architecture=layout.op, num_layers=len(layout.layers), hidden_size=layout.hidden_size,
                   gate_activation=layout.gate_activation)


def load_init(path: str | os.PathLike, categories_file: str = "") -> tuple[RnnLayout, list[str]]:
    from core.models import load_model
    from core.train.teacher import model_categories

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such model to start from")
    graph = load_model(path)
    cats = model_categories(graph, path, categories_file, "--init-categories")
    layout = rnn_layout(graph, str(path))
    if len(cats) != layout.head_weight.shape[0]:
        raise DataError(f"{path}: the model has {layout.head_weight.shape[0]} outputs but {len(cats)} categories")
    return layout, cats


def apply_init(model, layout: RnnLayout, init_categories: list[str], categories: list[str],
               outputs: bool = True) -> dict:
    """Copy the init weights into `model` (an arch.RNNSpotter built with adopt_architecture's
    options); with outputs=False only the recurrent layers and normalisation (a new output layer,
    e.g. for words the init model must not lend its knowledge to). Returns which categories came
    from the init model and which start fresh."""
    from core.train.teacher import category_map

    rnn = model.rnn
    if rnn.num_layers != len(layout.layers) or rnn.hidden_size != layout.hidden_size:
        raise ValueError("build the model with adopt_architecture(cfg, layout) first")
    n_features = model.norm.mean.shape[0]
    if layout.n_features != n_features:
        raise DataError(f"the init model reads {layout.n_features} features per frame, this dataset has "
                        f"{n_features}: use the featurizer the init model was trained with")
    mapping, _ = category_map(init_categories, categories)
    with torch.no_grad():
        for k, p in enumerate(layout.layers):
            for key, attr in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh")):
                getattr(rnn, f"{attr}_l{k}").copy_(torch.from_numpy(p[key]))
        if layout.mean is not None:
            model.norm.mean.copy_(torch.from_numpy(layout.mean))
            model.norm.std.copy_(torch.from_numpy((1.0 / layout.scale).astype(np.float32)))
        else:
            model.norm.mean.zero_()
            model.norm.std.fill_(1.0)
        copied, fresh = [], []
        for j, c in enumerate(categories):
            src = np.flatnonzero(mapping[:, j])
            # exactly one source row: copy it; several (e.g. many classes -> unknown) or none: fresh
            if outputs and len(src) == 1:
                model.head.weight[j].copy_(torch.from_numpy(layout.head_weight[src[0]]))
                model.head.bias[j] = float(layout.head_bias[src[0]])
                copied.append(c)
            else:
                fresh.append(c)
    return {"copied": copied, "fresh": fresh}
