"""Trained PyTorch spotter -> our model graph (and ONNX with the RNNs kept as GRU/LSTM ops).

The graph ends in Softmax (ELL turns the final LogSoftmax into Softmax) so the classifier emits
probabilities; normalisation (per-feature mean / std) is baked in as two element-wise nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from core.fsutil import atomic_path
from core.graph.ir import Graph, Node
from core.train.arch import RNNSpotter


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _normalize_nodes(model, prev: str) -> tuple[list[Node], str]:
    mean, std = _np(model.norm.mean), _np(model.norm.std)
    if np.all(mean == 0) and np.all(std == 1):
        return [], prev
    nodes = [
        Node("norm_mean", "constant", [], {}, {"value": mean}),
        Node("norm_sub", "binary", [prev, "norm_mean"], {"fn": "sub"}),
        Node("norm_scale", "constant", [], {}, {"value": (1.0 / std).astype(np.float32)}),
        Node("norm", "binary", ["norm_sub", "norm_scale"], {"fn": "mul"}),
    ]
    return nodes, "norm"


def rnn_graph(model: RNNSpotter, n_features: int) -> Graph:
    nodes = [Node("input", "input", [], {"size": n_features})]
    extra, prev = _normalize_nodes(model, "input")
    nodes += extra
    op = "lstm" if isinstance(model.rnn, torch.nn.LSTM) else "gru"
    gate = getattr(model.rnn, "gate_activation", "sigmoid")
    for layer in range(model.rnn.num_layers):
        p = {k: _np(getattr(model.rnn, f"{name}_l{layer}")) for k, name in
             (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"))}
        nid = f"{op}{layer}"
        nodes.append(Node(nid, op, [prev], {"hidden_size": model.rnn.hidden_size, "gate_activation": gate,
                                            "activation": "tanh", "linear_before_reset": True}, p))
        prev = nid
    nodes.append(Node("head", "dense", [prev], {}, {"weight": _np(model.head.weight), "bias": _np(model.head.bias)}))
    nodes.append(Node("softmax", "softmax", ["head"]))
    nodes.append(Node("output", "output", ["softmax"]))
    return Graph(nodes)


def to_graph(model, n_features: int, onnx_path: str | os.PathLike | None = None) -> Graph:
    """The classifier graph for a trained model (convolutional ones, TCN and BC-ResNet, go through
    their ONNX export + import, the one path that makes their convolutions streaming ops)."""
    model = model.eval().cpu()
    if not isinstance(model, RNNSpotter):
        from core.importers.onnx import load_onnx

        if onnx_path is None:
            raise ValueError(f"a {type(model).__name__} converts through its ONNX export: pass onnx_path")
        return load_onnx(onnx_path)
    return rnn_graph(model, n_features)


def _sigmoid_twin(model: RNNSpotter) -> RNNSpotter:
    """A copy of a hard-sigmoid GRU spotter with nn.GRU in place of HardGRU (same weights), so the
    exporter writes ONNX GRU ops; their activations are set to HardSigmoid afterwards."""
    import copy

    twin = copy.deepcopy(model)
    h = model.rnn
    twin.rnn = torch.nn.GRU(h.input_size, h.hidden_size, num_layers=h.num_layers, batch_first=True)
    twin.rnn.load_state_dict(h.state_dict())
    return twin.eval()


def _hard_sigmoid_gates(path: Path) -> None:
    """Every ONNX GRU node of the file gets activations (HardSigmoid 0.2 / 0.5, Tanh): ELL's cell."""
    import onnx
    from onnx import helper

    m = onnx.load(str(path))
    for node in m.graph.node:
        if node.op_type == "GRU":
            keep = [a for a in node.attribute if a.name not in ("activations", "activation_alpha", "activation_beta")]
            del node.attribute[:]
            node.attribute.extend(keep + [helper.make_attribute("activations", ["HardSigmoid", "Tanh"]),
                                          helper.make_attribute("activation_alpha", [0.2]),
                                          helper.make_attribute("activation_beta", [0.5])])
    onnx.save(m, str(path))


def export_onnx(model, n_features: int, path: str | os.PathLike) -> Path:
    """Sequence model (batch, frames, features) -> log-probabilities per frame; dynamic batch and frames."""
    model = model.eval().cpu()
    hard = isinstance(model, RNNSpotter) and getattr(model.rnn, "gate_activation", "sigmoid") == "hard_sigmoid"
    x = torch.zeros(1, 8, n_features)
    from core.quiet import onnx_export_warnings

    with atomic_path(path) as tmp, onnx_export_warnings():
        torch.onnx.export(_sigmoid_twin(model) if hard else model, (x,), str(tmp), input_names=["features"],
                          output_names=["log_probs"],
                          dynamic_axes={"features": {0: "batch", 1: "frames"}, "log_probs": {0: "batch", 1: "frames"}},
                          dynamo=False)
        if hard:
            _hard_sigmoid_gates(Path(tmp))
    return Path(path)
