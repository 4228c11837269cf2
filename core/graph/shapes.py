"""Shape inference over a graph (per-frame shapes, no time axis)."""

from __future__ import annotations

from core.errors import ModelFormatError
from core.graph.ir import Graph
from core.graph.ops import OPS, Shape


def infer_shapes(graph: Graph) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    for n in graph.nodes:
        spec = OPS.get(n.op)
        if spec is None:
            raise ModelFormatError(f"node {n.id!r}: unknown op {n.op!r}")
        lo, hi = spec.arity
        if not lo <= len(n.inputs) <= hi:
            raise ModelFormatError(f"node {n.id!r} ({n.op}) takes {lo}..{hi} inputs, has {len(n.inputs)}")
        try:
            in_shapes = [shapes[i] for i in n.inputs]
        except KeyError as e:
            raise ModelFormatError(f"node {n.id!r}: input {e.args[0]!r} is not defined before it") from None
        try:
            shapes[n.id] = tuple(int(d) for d in spec.shape(n, in_shapes))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError) as e:
            raise ModelFormatError(f"node {n.id!r} ({n.op}): bad attributes or parameters: {e}") from None
    return shapes
