"""The one model representation: a small graph of typed nodes.

Every node has one output, named by the node's id. A graph streams: one call consumes one
frame of its input (a hop of audio for a featurizer, a feature vector for a classifier) and
keeps state between calls. Per-frame values are float32 vectors (VAD emits a (1,) 0/1 vector).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ModelFormatError

MAX_NODES = 20_000  # a large imported network has a few hundred
MAX_ELEMENTS = 1 << 22  # per-frame tensor or one op's state, in elements (16 MiB of float32)
MAX_PARAM_ELEMENTS = 1 << 26  # all parameters of a graph together (256 MiB of float32)


@dataclass
class Node:
    id: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Graph:
    """Nodes in topological order, one input node, one output node, and metadata."""

    nodes: list[Node]
    metadata: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- lookup
    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def by_op(self, op: str) -> list[Node]:
        return [n for n in self.nodes if n.op == op]

    @property
    def input_node(self) -> Node:
        found = self.by_op("input")
        if len(found) != 1:
            raise ModelFormatError(f"graph needs exactly one input node, has {len(found)}")
        return found[0]

    @property
    def output_node(self) -> Node:
        found = self.by_op("output")
        if len(found) != 1:
            raise ModelFormatError(f"graph needs exactly one output node, has {len(found)}")
        return found[0]

    @property
    def input_size(self) -> int:
        return int(self.input_node.attrs["size"])

    @property
    def output_size(self) -> int:
        from core.graph.shapes import infer_shapes

        return int(np.prod(infer_shapes(self)[self.output_node.id]))

    @property
    def categories(self) -> list[str]:
        return list(self.metadata.get("categories") or [])

    def consumers(self, node_id: str) -> list[Node]:
        return [n for n in self.nodes if node_id in n.inputs]

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def new_id(self, prefix: str) -> str:
        ids = {n.id for n in self.nodes}
        i = 0
        while f"{prefix}{i}" in ids:
            i += 1
        return f"{prefix}{i}"

    # ---------------------------------------------------------------- checks
    def validate(self) -> None:
        """Everything a model must satisfy before it runs, whichever file it came from.

        Node fields of the right types, ids unique, inputs defined before use (so the graph is
        acyclic; one pass, no recursion), known ops, at most MAX_NODES nodes, one input and one
        output; every parameter a finite float32 array (or of the dtype its op declares: the int8
        weights of core.graph.ops_q8); every attribute of the kind, range and size its op declares
        (core.graph.ops.check_attrs); shapes that infer, with every per-frame tensor non-empty and
        at most MAX_ELEMENTS elements.
        """
        from core.graph.ops import OPS, check_attrs
        from core.graph.shapes import infer_shapes

        if not isinstance(self.nodes, list) or not isinstance(self.metadata, dict):
            raise ModelFormatError("graph nodes must be a list and its metadata a dict")
        if len(self.nodes) > MAX_NODES:
            raise ModelFormatError(f"graph has {len(self.nodes)} nodes, more than {MAX_NODES}")
        seen: set[str] = set()
        n_params = 0
        for n in self.nodes:
            if not isinstance(n, Node) or not isinstance(n.id, str) or not n.id or not isinstance(n.op, str):
                raise ModelFormatError(f"node {getattr(n, 'id', n)!r}: id and op must be non-empty strings")
            if not isinstance(n.inputs, list) or not all(isinstance(i, str) for i in n.inputs):
                raise ModelFormatError(f"node {n.id!r}: inputs must be a list of node ids")
            if not isinstance(n.attrs, dict) or not isinstance(n.params, dict):
                raise ModelFormatError(f"node {n.id!r}: attrs and params must be dicts")
            if n.id in seen:
                raise ModelFormatError(f"duplicate node id {n.id!r}")
            if n.op not in OPS:
                raise ModelFormatError(f"node {n.id!r}: unknown op {n.op!r}")
            for i in n.inputs:
                if i not in seen:
                    raise ModelFormatError(f"node {n.id!r} ({n.op}): input {i!r} is not defined before it")
            for k, a in n.params.items():
                want = OPS[n.op].param_dtype(k)  # float32 unless the op declares another (int8 weights)
                if not isinstance(a, np.ndarray) or a.dtype != want:
                    kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                    raise ModelFormatError(f"node {n.id!r} ({n.op}): parameter {k!r} must be a {want} array, "
                                           f"is {kind}")
                n_params += a.size
                if n_params > MAX_PARAM_ELEMENTS:
                    raise ModelFormatError(f"graph has more than {MAX_PARAM_ELEMENTS} parameters")
                if want.kind == "f" and not np.isfinite(a).all():
                    raise ModelFormatError(f"node {n.id!r} ({n.op}): parameter {k!r} has NaN or infinite values")
            check_attrs(n)
            seen.add(n.id)
        _ = self.input_node, self.output_node
        for nid, shape in infer_shapes(self).items():
            if any(d < 1 for d in shape) or int(np.prod(shape, dtype=object)) > MAX_ELEMENTS:
                raise ModelFormatError(f"node {nid!r}: per-frame shape {shape} is empty or has more than "
                                       f"{MAX_ELEMENTS} elements")

    def prune(self) -> Graph:
        """Drop nodes the output does not depend on (keeps the input node)."""
        needed = {self.output_node.id, self.input_node.id}
        for n in reversed(self.nodes):
            if n.id in needed:
                needed.update(n.inputs)
        self.nodes = [n for n in self.nodes if n.id in needed]
        return self


def chain(ops: list[tuple[str, dict, dict]], metadata: dict | None = None, prefix: str = "") -> Graph:
    """Build a linear graph from (op, attrs, params) triples; the first must be 'input'."""
    nodes: list[Node] = []
    for i, (op, attrs, params) in enumerate(ops):
        nid = f"{prefix}{i}_{op}"
        inputs = [nodes[-1].id] if nodes else []
        nodes.append(Node(nid, op, inputs, dict(attrs), {k: np.asarray(v, np.float32) for k, v in params.items()}))
    return Graph(nodes, dict(metadata or {}))
