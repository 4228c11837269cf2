"""Mirror a classifier graph as a PyTorch module (streaming: state in, state out).

Used to time PyTorch and onnxruntime beside our runtimes on the same weights, and to check
parity. Supports the classifier ops: dense, constant + binary, unary, softmax / log-softmax,
GRU, LSTM (the VAD reset trigger is not mirrored).
"""

from __future__ import annotations

import numpy as np

from core.errors import ModelFormatError
from core.graph.ir import Graph


def _torch():
    import torch

    return torch


def build_module(graph: Graph):
    torch = _torch()
    nn = torch.nn

    class GraphModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.plan = []
            self.rnns = nn.ModuleDict()
            self.consts = {}
            for n in graph.nodes:
                if n.op in ("gru", "lstm"):
                    if n.attrs.get("gate_activation", "sigmoid") != "sigmoid" or not n.attrs.get(
                        "linear_before_reset", True
                    ):
                        raise ModelFormatError(f"node {n.id}: only sigmoid-gated PyTorch-style RNNs mirror to torch")
                    cls = nn.GRU if n.op == "gru" else nn.LSTM
                    hid, inp = n.attrs["hidden_size"], n.params["w_ih"].shape[1]
                    m = cls(inp, hid, batch_first=True)
                    with torch.no_grad():
                        for k in ("w_ih", "w_hh", "b_ih", "b_hh"):
                            name = {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0",
                                    "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}[k]
                            getattr(m, name).copy_(torch.from_numpy(np.asarray(n.params[k])))
                    self.rnns[n.id] = m
                elif n.op == "constant":
                    self.consts[n.id] = torch.from_numpy(np.asarray(n.params["value"], np.float32))
                elif n.op == "dense":
                    lin = nn.Linear(n.params["weight"].shape[1], n.params["weight"].shape[0], bias="bias" in n.params)
                    with torch.no_grad():
                        lin.weight.copy_(torch.from_numpy(n.params["weight"]))
                        if "bias" in n.params:
                            lin.bias.copy_(torch.from_numpy(n.params["bias"]))
                    self.rnns[n.id] = lin
                elif n.op not in ("input", "output", "vad", "binary", "unary", "softmax", "log_softmax", "identity"):
                    raise ModelFormatError(f"node {n.id}: op {n.op!r} does not mirror to torch")
                self.plan.append(n)
            self.state_nodes = [n for n in graph.nodes if n.op in ("gru", "lstm")]

        def initial_state(self, batch: int = 1):
            out = []
            for n in self.state_nodes:
                h = torch.zeros(1, batch, n.attrs["hidden_size"])
                out += [h] if n.op == "gru" else [h, h.clone()]
            return out

        def forward(self, x, *state):
            """x: (batch, time, features) -> (probabilities (batch, time, classes), *new_state)."""
            vals, new_state, k = {}, [], 0
            for n in self.plan:
                if n.op == "input":
                    vals[n.id] = x
                elif n.op == "constant":
                    vals[n.id] = self.consts[n.id]
                elif n.op in ("output", "identity"):
                    vals[n.id] = vals[n.inputs[0]]
                elif n.op == "vad":
                    continue
                elif n.op == "gru":
                    y, h = self.rnns[n.id](vals[n.inputs[0]], state[k] if state else None)
                    vals[n.id], k = y, k + 1
                    new_state.append(h)
                elif n.op == "lstm":
                    hc = (state[k], state[k + 1]) if state else None
                    y, (h, c) = self.rnns[n.id](vals[n.inputs[0]], hc)
                    vals[n.id], k = y, k + 2
                    new_state += [h, c]
                elif n.op == "dense":
                    vals[n.id] = self.rnns[n.id](vals[n.inputs[0]])
                elif n.op == "binary":
                    a, b = vals[n.inputs[0]], vals[n.inputs[1]]
                    fn = n.attrs["fn"]
                    vals[n.id] = {"add": a + b, "sub": a - b, "mul": a * b}.get(fn) if fn != "div" else a / b
                elif n.op == "unary":
                    fn = n.attrs["fn"]
                    vals[n.id] = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
                                  "exp": torch.exp, "log": torch.log, "abs": torch.abs}[fn](vals[n.inputs[0]])
                elif n.op == "softmax":
                    vals[n.id] = torch.softmax(vals[n.inputs[0]], dim=-1)
                elif n.op == "log_softmax":
                    vals[n.id] = torch.log_softmax(vals[n.inputs[0]], dim=-1)
            return (vals[graph.output_node.id], *new_state)

    return GraphModule().eval()


def sigmoid_gated(graph: Graph) -> Graph:
    """A copy whose RNN gates use the logistic sigmoid (for mirroring hard-sigmoid models in peers)."""
    g = graph.copy()
    for n in g.nodes:
        if n.op in ("gru", "lstm"):
            n.attrs["gate_activation"] = "sigmoid"
    return g


def export_streaming_onnx(graph: Graph, path) -> list[str]:
    """Export the mirrored module for one frame with state in/out; returns the state input names."""
    torch = _torch()
    m = build_module(graph)
    x = torch.zeros(1, 1, graph.input_size)
    state = m.initial_state()
    names = [f"state{i}" for i in range(len(state))]
    from core.quiet import onnx_export_warnings

    with onnx_export_warnings():
        torch.onnx.export(m, (x, *state), str(path), input_names=["x", *names],
                          output_names=["y", *[f"new_{s}" for s in names]], dynamo=False)
    return names
