"""Shared helpers of the compiler tests: small graphs, real clips, parity checks."""

from __future__ import annotations

import copy
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


U32 = 2.0**-24  # float32 unit roundoff


def float32_rtol(
    graphs: Graph | list[Graph], frames: np.ndarray, floor: float | np.ndarray = 0.0, k: float = 8.0, seed: int = 0
) -> float:
    """Relative tolerance for comparing two float32 implementations of `graphs` on `frames`.

    Backward error analysis (Higham, Accuracy and Stability, Thm 3.1; Higham & Mary 2019 for the
    probabilistic form): a float32 dot product of length n, summed in any order (vector width,
    FMA contraction, blocking: what differs between CPUs and code generators), equals the exact
    product with every weight perturbed by a relative amount of order sqrt(n) * u; an elementwise
    function (expf, logf within 2 ulp, tanhf within 3 ulp in core/compiler/mathlib.py; numpy's
    within 1-2) equals the exact one with its result perturbed by a few u. So we draw such
    perturbations (seeded): every weight array by sqrt(fan_in) * u, every node's output by 4 u,
    and every FFT's output (fft_mag) also by log2(n_fft) u of its frame's RMS magnitude in every bin:
    a float32 FFT's error is bounded relative to the spectrum's norm, not per bin,
    ||dX|| <= log2(n) eta ||X|| with eta ~ 7 u (Higham Thm 24.2; twiddles rounded once), and is spread
    over the bins like white noise (Weinstein 1969), so a bin far below the others has a large
    relative error; then
    run the reference interpreter on the perturbed model, and take the largest relative change of
    any output as the size of an implementation difference for this model on these inputs (its
    conditioning included: a softmax turns a logit error d into a relative probability error up
    to 2 d, however small the probability; x - tanh(x) cancels). Two implementations each within
    that of the exact result differ by at most about twice it; `k` = 8 adds margin for the draw
    being typical rather than worst. VAD decisions and the values they are taken on are kept
    exact (a flipped decision is a real difference, not rounding). The floor of 64 ulp covers
    outputs that depend on no rounding step. Compare with `rel_err(got, ref, floor)` using the
    same `floor`. Nothing here depends on what this CPU's compiled code produced.
    """
    graphs = [graphs] if isinstance(graphs, Graph) else list(graphs)
    rng = np.random.default_rng(seed)

    def jitter(v: np.ndarray, rel: float | np.ndarray) -> np.ndarray:
        if v.dtype.kind != "f":
            return v
        with np.errstate(all="ignore"):
            return (v * (1 + rel * rng.uniform(-1, 1, v.shape))).astype(v.dtype)

    def run(g: Graph, x: np.ndarray, perturb: bool) -> np.ndarray:
        if perturb:
            g = copy.deepcopy(g)
            for node in g.nodes:
                for name, w in node.params.items():
                    if w.ndim >= 2:
                        node.params[name] = jitter(w, np.sqrt(np.prod(w.shape[1:])) * U32)
        it = Interpreter(g)
        exact = {i for n in g.nodes if n.op == "vad" for i in [n.id, *n.inputs]}
        values = {it.input_id: np.asarray(x, np.float32)}
        for nid, c in it._constants.items():
            values[nid] = np.broadcast_to(c, (len(x),) + c.shape)
        for node, spec in it._plan:
            v = spec.run(node, [values[i] for i in node.inputs], it.states[node.id])
            if perturb and node.op == "fft_mag":
                v = _fft_noise(v, node, rng)
            values[node.id] = jitter(v, 4 * U32) if perturb and node.id not in exact else v
        return values[it.output_id].reshape(len(x), -1)

    def chain_run(perturb: bool) -> np.ndarray:
        y = np.asarray(frames, np.float32)
        for g in graphs:
            y = run(g, y, perturb)
        return y

    ref = chain_run(False)
    return max(k * rel_err(chain_run(True), ref, floor), 64 * U32)


def _fft_noise(v: np.ndarray, node, rng: np.random.Generator) -> np.ndarray:
    """fft_mag output with white noise of log2(n_fft) u of each frame's RMS magnitude per bin."""
    n = int(node.attrs["n_fft"])
    power = bool(node.attrs.get("power", False))
    mag = np.sqrt(v.astype(np.float64) * n) if power else v.astype(np.float64)
    rms = np.sqrt(np.mean(mag**2, axis=-1, keepdims=True))
    mag = np.abs(mag + np.log2(n) * U32 * rms * rng.uniform(-1, 1, mag.shape))
    return (mag**2 / n if power else mag).astype(v.dtype)


def check_parity(
    graph: Graph,
    frames: np.ndarray,
    rtol: float | None = None,
    floor: float | np.ndarray | None = None,
    name: str = "m",
) -> np.ndarray:
    """Compiled (block call and per-frame calls) == interpreter, frame by frame, within rtol
    (default: float32_rtol of this graph on these frames; 0 where the code must be exact).

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
    if rtol is None:
        rtol = float32_rtol(graph, frames, fl)
    err = rel_err(block, ref, fl)
    assert err <= rtol, f"compiled vs interpreter: relative error {err:.3g} > {rtol:g}"
    return block


def single(
    op: str, attrs: dict | None = None, params: dict | None = None, size: int = 80, meta: dict | None = None
) -> Graph:
    return chain([("input", {"size": size}, {}), (op, attrs or {}, params or {}), ("output", {}, {})], meta)
