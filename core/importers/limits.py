"""Sane limits for imported models, and the final check of an imported graph against them.

A keyword spotter is small: tens of thousands to a few million weights, frames of tens to a few
thousand values. A model file that declares far more is broken or hostile; it is refused at import
(naming the file, the node and the field) before anything is allocated, never at run time. The
limits leave two to three orders of magnitude of room above the biggest model this project
trains or imports (the DevKit GRU: 31 classes, 2 x 100 units, 80-value frames, 512-point FFT).
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import KwsError, ModelImportError
from core.graph.ir import Graph

MiB = 1 << 20
MAX_ELL_BYTES = 128 * MiB  # a JSON .ell file (parsed into Python lists: ~10x its size in memory)
MAX_ONNX_BYTES = 1024 * MiB  # an .onnx file, and separately all its external data together
MAX_NODES = 10_000  # nodes in the file (the DevKit classifier has 24, a large CNN export ~1000)
MAX_FRAME = 1 << 22  # values in any one per-frame tensor (16 MiB of float32)
MAX_PARAM = 1 << 26  # elements of one weight tensor or folded constant (256 MiB of float32)
MAX_STATE = 1 << 24  # values of history one node keeps between frames (buffers, delay lines)
MAX_FILTERS = 1 << 14  # filters of a filter bank or outputs of a DCT (each one a Python loop step)


def prod(dims) -> int:
    """The exact product of integer dims (Python ints, no overflow)."""
    return math.prod(int(d) for d in dims)


def _state_size(node, shape_in: tuple[int, ...] | None) -> int:
    a = node.attrs
    frame = prod(shape_in) if shape_in else 1
    if node.op == "frame_buffer":
        return int(a["window_size"])
    if node.op == "iir":
        return max(len(a["a"]), len(a["b"]))
    if node.op == "delay":
        return int(a["frames"]) * frame
    if node.op in ("conv", "pool"):
        reach = (int(a.get("kernel_t", 1)) - 1) * int(a.get("dilation_t", 1))
        return reach * int(a.get("in_channels", 1)) * int(a.get("in_width", 1))
    return 0


def check_graph(graph: Graph, name: str, error: type[KwsError] = ModelImportError) -> None:
    """Refuse a graph whose frames, weights or per-node state exceed the limits above, or whose
    weights are not finite numbers. `name` (the file) starts every message."""
    from core.graph.shapes import infer_shapes

    if len(graph.nodes) > MAX_NODES:
        raise error(f"{name}: {len(graph.nodes)} nodes, more than the {MAX_NODES} allowed")
    shapes = infer_shapes(graph)
    for n in graph.nodes:
        where = f"{name}: node {n.id!r} ({n.op})"
        frame = prod(shapes[n.id])
        if frame > MAX_FRAME or min(shapes[n.id], default=1) < 0:
            raise error(f"{where}: a frame of shape {shapes[n.id]} ({frame} values; at most {MAX_FRAME} allowed)")
        for key, value in n.params.items():
            arr = np.asarray(value)
            if arr.size > MAX_PARAM:
                raise error(f"{where}: parameter {key!r} has {arr.size} elements, more than the {MAX_PARAM} allowed")
            if arr.dtype.kind not in "fiub":
                raise error(f"{where}: parameter {key!r} is not numeric (dtype {arr.dtype})")
            if not np.all(np.isfinite(arr)):
                raise error(f"{where}: parameter {key!r} holds NaN or infinite values")
        try:
            state = _state_size(n, shapes[n.inputs[0]] if n.inputs else None)
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise error(f"{where}: malformed attributes: {e!r}") from None
        if state > MAX_STATE or state < 0:
            raise error(f"{where}: keeps {state} values of history, more than the {MAX_STATE} allowed")
        if n.op == "dct" and prod(shapes[n.id]) * prod(shapes[n.inputs[0]]) > MAX_PARAM:
            raise error(f"{where}: a DCT of {shapes[n.inputs[0]]} to {shapes[n.id]} values is too large")
