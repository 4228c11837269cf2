"""The compiled backend with the interpreter's interface: step / run / reset (and process, for
KeywordSpotter). One ctypes call per frame (`step`) or per block of frames (`run`).

    model = CompiledModel(classifier)          # host JIT
    probs = model.step(features)               # (output_size,)
    probs = model.run(feature_frames)          # (T, output_size), one native call
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Sequence

import numpy as np

from core.compiler.jit import jit
from core.compiler.lower import lower
from core.compiler.targets import Target
from core.errors import CompileError, ModelFormatError
from core.graph.ir import Graph

_PREDICT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_FRAMES = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)
_VOID = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_I32 = ctypes.CFUNCTYPE(ctypes.c_int32)
_STR = ctypes.CFUNCTYPE(ctypes.c_char_p)


class CompiledModel:
    """Graph(s) compiled for this machine. Several graphs are chained into one native step."""

    def __init__(
        self,
        graphs: Graph | Sequence[Graph],
        module_name: str = "kws",
        *,
        target: Target | None = None,
        options: dict | None = None,
    ):
        self.graphs = [graphs] if isinstance(graphs, Graph) else list(graphs)
        self.graph = self.graphs[0] if len(self.graphs) == 1 else None
        target = target or Target.host()
        self.ir = lower(self.graphs, module_name, options={"target": target, **(options or {})})
        self.library = jit(self.ir, module_name, target)
        a = self.library.address
        self._predict = _PREDICT(a("predict"))
        self._frames = _FRAMES(a("predict_frames"))
        self._reset = _VOID(a("reset"))
        self.input_size = int(_I32(a("input_size"))())
        self.output_size = int(_I32(a("output_size"))())
        self.context_size = int(_I32(a("context_size"))())
        self.metadata = json.loads(_STR(a("metadata"))().decode("utf-8"))
        # the context: 64-byte aligned, owned by this instance
        self._ctx_mem = np.zeros(self.context_size + 64, np.uint8)
        base = self._ctx_mem.ctypes.data
        self._ctx = base + (-base % 64)
        self._in = np.zeros(self.input_size, np.float32)
        self._out = np.zeros(self.output_size, np.float32)
        self._in_p, self._out_p = self._in.ctypes.data, self._out.ctypes.data
        self.reset()

    def reset(self) -> None:
        self._reset(self._ctx)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One frame in, one frame out (a new array), state kept."""
        x = np.asarray(frame, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.input_size:
            raise ModelFormatError(f"input must have {self.input_size} values, got {x.shape[0]}")
        self._in[:] = x
        self._predict(self._ctx, self._in_p, self._out_p)
        return self._out.copy()

    def step_raw(self) -> None:
        """Run one frame from the internal input buffer into the internal output buffer (benchmarks)."""
        self._predict(self._ctx, self._in_p, self._out_p)

    def run(self, frames: np.ndarray) -> np.ndarray:
        """(T, input_size) -> (T, output_size) in one native call; same as T calls of step."""
        x = np.ascontiguousarray(frames, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ModelFormatError(f"input must be (frames, {self.input_size}), got {x.shape}")
        out = np.empty((x.shape[0], self.output_size), np.float32)
        if len(x):
            self._frames(self._ctx, x.ctypes.data, out.ctypes.data, int(x.shape[0]))
        return out

    def run_into(self, x: np.ndarray, out: np.ndarray) -> None:
        """run() without checks or allocation: x (T, in) and out (T, out) float32, C-contiguous."""
        self._frames(self._ctx, x.ctypes.data, out.ctypes.data, int(x.shape[0]))


def compile_model(graphs: Graph | Sequence[Graph], module_name: str = "kws", **kw) -> CompiledModel:
    try:
        return CompiledModel(graphs, module_name, **kw)
    except CompileError:
        raise
    except OSError as e:  # pragma: no cover - loader failures
        raise CompileError(f"cannot load the compiled model: {e}") from None
