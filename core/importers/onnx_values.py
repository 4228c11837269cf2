"""Values the ONNX translator tracks per ONNX tensor, and the shape arithmetic of the time axis.

An ONNX tensor is one of:
- `Const`: known at import (weights, folded shape subgraphs);
- `Stream`: computed per frame by a node of our graph. `dims` is its full ONNX shape with the
  batch axis as 1 and the time axis as `TIME`; `t` is the index of the time axis, or None once
  time has been reduced away (last step taken, pooled over time). Our node holds the tensor's
  *frame*: the ONNX tensor at one time step, squeezed (every axis of size 1 dropped, row-major);
- `StateIn`: derived only from an extra graph input that feeds RNN initial states (streaming
  exports pass hidden state in and out; our RNN nodes keep their own state);
- `Poison`: the output of an unsupported node (reported once, at the end);
- `Bad`: an output we cannot provide (e.g. an LSTM cell state); using it is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Stands for the unknown length of the time axis in shape arithmetic: `Shape` reports it, and a
# reshape target holding it (or a multiple of it) tells where the time axis went. A prime far
# above any per-frame size, so products with it stay recognisable.
TIME = 1_000_003


@dataclass
class Const:
    value: np.ndarray


@dataclass
class Stream:
    node: str
    dims: tuple[int, ...]
    t: int | None
    delay: int = 0  # our frame k holds the model's time step k - delay (latency, in frames)
    tail: int = 0  # the model's sequence extends `tail` steps past the newest frame (look-ahead)
    pad_t: tuple[int, int] = (0, 0)  # a pending Pad over time; only a Conv may absorb it

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def frame_dims(self) -> tuple[int, ...]:
        """The ONNX shape without the time axis (batch and other size-1 axes kept)."""
        return tuple(d for k, d in enumerate(self.dims) if k != self.t)

    def frame_axis(self, axis: int) -> int:
        """ONNX axis (not the time axis) -> its index in frame_dims."""
        return axis - 1 if self.t is not None and axis > self.t else axis

    def with_(self, **kw) -> Stream:
        d = dict(node=self.node, dims=self.dims, t=self.t, delay=self.delay, tail=self.tail, pad_t=self.pad_t)
        d.update(kw)
        return Stream(**d)


@dataclass
class StateIn:
    name: str


@dataclass
class Poison:
    pass


@dataclass
class Bad:
    message: str = field(default="")


def squeezed(dims) -> tuple[int, ...]:
    """Our per-frame shape for full frame dims: size-1 axes dropped; (1,) when nothing is left."""
    out = tuple(int(d) for d in dims if d != 1)
    return out or (1,)


def size(dims) -> int:
    """The number of elements of `dims` (exact Python ints, no overflow)."""
    return math.prod(int(d) for d in dims)
