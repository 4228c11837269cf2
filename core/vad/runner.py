"""Classifier outputs over a long feature stream for any set of reset frames, with caching.

A VAD reset zeroes every recurrent state after a frame's output. When the recurrent layers are
the only state a classifier has, the outputs from frame a + 1 onward (until the next reset) are
those of a fresh classifier started at frame a + 1: they depend on the start frame only. So
`ResetRunner` keys runs by their start frame and reuses them across VAD settings (a tuner tries
hundreds; their resets fall on a few hundred distinct frames). Other state (streaming
convolutions, ...) is not reset by a VAD; such graphs run the stream whole, zeroing only the
recurrent states at each reset.

Backend "compiled" (host JIT, ~7x faster here) reruns a start from scratch when it needs more
frames; "interpreter" continues from a saved state. "auto" compiles when it can. Long runs
without resets are numerically sensitive (a saturated GRU over thousands of frames amplifies
float rounding): the two backends agree within 1e-5 per clip but can drift apart over minutes of
continuous input, by chance, not bias.
"""

from __future__ import annotations

import bisect
import copy

import numpy as np

from core.errors import KwsError
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph
from core.graph.ops import OPS
from core.vad.model import RECURRENT, strip_vad


def only_recurrent_state(graph: Graph) -> bool:
    return all(OPS[n.op].init_state is None or n.op in RECURRENT for n in graph.nodes)


class ResetRunner:
    """Outputs of `classifier` (its VAD, if any, taken out) over `features` (T, n_features)."""

    def __init__(self, classifier: Graph, features: np.ndarray, backend: str = "auto"):
        if backend not in ("auto", "compiled", "interpreter"):
            raise ValueError(f"backend must be auto, compiled or interpreter, got {backend!r}")
        self.graph = strip_vad(classifier)
        self.rt = Interpreter(self.graph)
        self.features = np.ascontiguousarray(features, np.float32)
        self.cacheable = only_recurrent_state(self.graph)
        self.compiled = None
        if self.cacheable and backend != "interpreter":
            self.compiled = _compiled(self.graph, required=backend == "compiled")
        self.backend = "compiled" if self.compiled is not None else "interpreter"
        self._runs: dict[int, tuple[np.ndarray, dict | None]] = {}
        self.frames_run = 0  # classifier frames computed so far (cost)

    def __len__(self) -> int:
        return len(self.features)

    def _from(self, start: int, stop: int) -> np.ndarray:
        """Outputs for frames start..stop-1 of a classifier fresh at `start`."""
        have = self._runs.get(start)
        if have is not None and len(have[0]) >= stop - start:
            return have[0][: stop - start]
        if self.compiled is not None:  # rerun from scratch, at least doubling what is cached
            end = min(len(self.features), start + max(stop - start, 2 * len(have[0]) if have else 0))
            self.compiled.reset()
            out = self.compiled.run(self.features[start:end])
            self.frames_run += len(out)
            self._runs[start] = (out, None)
            return out[: stop - start]
        if have is None:
            self.rt.reset()
            prev = np.zeros((0, self.rt.output_size), np.float32)
        else:
            prev, states = have
            self.rt.states = copy.deepcopy(states)
        end = min(len(self.features), max(stop, start + 2 * len(prev)))
        new = self.rt.run(self.features[start + len(prev) : end])
        self.frames_run += len(new)
        out = np.concatenate([prev, new])
        self._runs[start] = (out, copy.deepcopy(self.rt.states))
        return out[: stop - start]

    def window(self, resets: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Outputs for frames lo..hi-1 when the state is zeroed after each frame in `resets`
        (sorted ascending)."""
        if not self.cacheable:
            raise RuntimeError("this classifier has non-recurrent state: use run()")
        r = resets.tolist() if isinstance(resets, np.ndarray) else list(resets)
        pieces, t = [], lo
        while t < hi:
            k = bisect.bisect_left(r, t)  # resets before t: r[:k]
            start = r[k - 1] + 1 if k else 0
            stop = min(hi, r[k] + 1) if k < len(r) else hi
            pieces.append(self._from(start, stop)[t - start :])
            t = stop
        return np.concatenate(pieces) if pieces else np.zeros((0, self.rt.output_size), np.float32)

    def run(self, resets: np.ndarray) -> np.ndarray:
        """Outputs for the whole stream (every frame) with these resets."""
        if self.cacheable:
            return self.window(resets, 0, len(self.features))
        self.rt.reset()
        rnn_ids = [n.id for n in self.graph.nodes if n.op in RECURRENT]
        fresh = {i: copy.deepcopy(self.rt.states[i]) for i in rnn_ids}
        out, start = [], 0
        for r in [*np.asarray(resets).tolist(), len(self.features) - 1]:
            if r + 1 > start:
                out.append(self.rt.run(self.features[start : r + 1]))
                self.frames_run += r + 1 - start
                start = r + 1
            for i in rnn_ids:
                self.rt.states[i] = copy.deepcopy(fresh[i])
        return np.concatenate(out) if out else np.zeros((0, self.rt.output_size), np.float32)


def _compiled(graph: Graph, required: bool):
    try:
        from core.compiler.runtime import CompiledModel

        return CompiledModel(graph, "kws_vad_runner")
    except (KwsError, ImportError, OSError):  # the compiler cannot: fall back to the interpreter
        if required:
            raise
        return None
