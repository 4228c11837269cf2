"""The numpy reference interpreter: streaming, stateful, the correctness reference.

    rt = Interpreter(graph)
    y = rt.step(frame)          # one frame in, one frame out, state kept
    Y = rt.run(frames)          # (T, in) -> (T, out), same as T calls of step
    rt.reset()
"""

from __future__ import annotations

import numpy as np

from core.errors import ModelFormatError
from core.graph.ir import Graph
from core.graph.ops import OPS
from core.graph.shapes import infer_shapes


class Interpreter:
    def __init__(self, graph: Graph):
        graph.validate()
        self.graph = graph
        self.shapes = infer_shapes(graph)
        self.input_id = graph.input_node.id
        self.output_id = graph.output_node.id
        self.input_size = int(np.prod(self.shapes[self.input_id]))
        self.output_size = int(np.prod(self.shapes[self.output_id]))
        self._constants = {n.id: n.params["value"].astype(np.float32) for n in graph.by_op("constant")}
        self._plan = [(n, OPS[n.op]) for n in graph.nodes if n.op not in ("input", "constant")]
        self.reset()

    def reset(self) -> None:
        self.states = {
            n.id: spec.init_state(n, [self.shapes[i] for i in n.inputs]) if spec.init_state else None
            for n, spec in self._plan
        }

    def run_all(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Run (T, input_size) frames; returns every node's (T, ...) output by node id."""
        x = np.asarray(frames, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ModelFormatError(f"input must be (frames, {self.input_size}), got {x.shape}")
        t = x.shape[0]
        values: dict[str, np.ndarray] = {self.input_id: x}
        for nid, c in self._constants.items():
            values[nid] = np.broadcast_to(c, (t,) + c.shape)
        for node, spec in self._plan:
            values[node.id] = spec.run(node, [values[i] for i in node.inputs], self.states[node.id])
        return values

    def run(self, frames: np.ndarray) -> np.ndarray:
        return self.run_all(frames)[self.output_id].reshape(len(np.atleast_2d(frames)), -1)

    def step(self, frame: np.ndarray) -> np.ndarray:
        return self.run(np.asarray(frame, dtype=np.float32).reshape(1, -1))[0]
