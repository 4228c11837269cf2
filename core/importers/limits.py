"""Sane limits for imported models (ELL, ONNX), checked while a file is read and translated.

The graph-wide limits (node count, values per frame, parameters, per-op state, finite weights)
are core.graph.ir's, enforced by Graph.validate on every model whatever its source; the importers
call it last. What is here is checked earlier, at the field of the foreign file that declares a
size, so that nothing absurd is ever allocated and the message can name that field: file sizes,
and the sizes of things the importers build themselves (filter banks, DCTs, folded constants).
A keyword spotter is small (the DevKit GRU: 80-value frames, 2 x 100 units, 31 classes, a
512-point FFT); the limits leave two to three orders of magnitude of room above that.
"""

from __future__ import annotations

import math

from core.fsutil import MiB
from core.graph.ir import MAX_ELEMENTS as MAX_FRAME  # values in one per-frame tensor
from core.graph.ir import MAX_NODES
from core.graph.ir import MAX_PARAM_ELEMENTS as MAX_PARAM  # weights of a graph; also one folded constant
from core.graph.ops import MAX_FFT

MAX_ELL_BYTES = 128 * MiB  # a JSON .ell file (parsed into Python lists: ~10x its size in memory)
MAX_ONNX_BYTES = 1024 * MiB  # an .onnx file, and separately all its external data together
MAX_FILTERS = 1 << 14  # filters of a filter bank or outputs of a DCT (each filter is a Python loop step)

__all__ = ["MAX_ELL_BYTES", "MAX_FFT", "MAX_FILTERS", "MAX_FRAME", "MAX_NODES", "MAX_ONNX_BYTES", "MAX_PARAM", "prod"]


def prod(dims) -> int:
    """The exact product of integer dims (Python ints: no overflow)."""
    return math.prod(int(d) for d in dims)
