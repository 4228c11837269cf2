"""Shared helpers of the compiler tests: small graphs, real clips, parity checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.audio.wav import read_wav
from core.features.featurizer import hops
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, chain

EXAMPLES = ("seven.wav", "bed.wav", "seven_tutorial.wav")


def real_clips(shared_data: Path, per_word: int = 1, words: int = 30) -> list[Path]:
    """The ELL example clips plus `per_word` Speech Commands clips of each of `words` words."""
    out = [shared_data / "ell_examples" / n for n in EXAMPLES]
    root = shared_data / "speech_commands_v0.01_sample"
    for d in sorted(p for p in root.iterdir() if p.is_dir())[:words]:
        out += sorted(d.glob("*.wav"))[:per_word]
    out += sorted((shared_data / "micro_speech").glob("*.wav"))
    return out


def clip_hops(path: Path, hop: int) -> np.ndarray:
    x, _ = read_wav(path)
    return hops(x, hop)


def rel_err(got: np.ndarray, ref: np.ndarray, floor: float | np.ndarray = 0.0) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    both_inf = np.isinf(got) & np.isinf(ref) & (np.sign(got) == np.sign(ref))
    both_nan = np.isnan(got) & np.isnan(ref)
    with np.errstate(all="ignore"):
        err = np.abs(got - ref) / np.maximum(np.abs(ref), floor)
    err[both_inf | both_nan | (got == ref)] = 0.0
    return float(np.nan_to_num(err, nan=np.inf).max()) if err.size else 0.0


def check_parity(
    graph: Graph,
    frames: np.ndarray,
    rtol: float = 1e-5,
    floor: float | np.ndarray | None = None,
    name: str = "m",
) -> np.ndarray:
    """Compiled (block call and per-frame calls) == interpreter, frame by frame, within rtol.

    `floor`: relative error is taken against max(|ref|, floor) (default: 1e-3 of the largest |ref|),
    so values that cancel to ~0 are compared at the scale of the output; an array gives a scale per
    value.
    """
    from core.compiler.runtime import CompiledModel

    ref = Interpreter(graph).run(frames)
    model = CompiledModel(graph, name)
    block = model.run(frames)
    model.reset()
    steps = np.array([model.step(f) for f in frames])
    np.testing.assert_array_equal(block, steps)  # the same code either way
    fl = floor if floor is not None else 1e-3 * float(np.nanmax(np.abs(ref[np.isfinite(ref)]), initial=0.0))
    err = rel_err(block, ref, fl)
    assert err <= rtol, f"compiled vs interpreter: relative error {err:.3g} > {rtol:g}"
    return block


def single(
    op: str, attrs: dict | None = None, params: dict | None = None, size: int = 80, meta: dict | None = None
) -> Graph:
    return chain([("input", {"size": size}, {}), (op, attrs or {}, params or {}), ("output", {}, {})], meta)
