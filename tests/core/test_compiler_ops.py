"""Every op the compiler lowers, host JIT vs the numpy interpreter, frame by frame on real audio
and real features (../shared/data), within 1e-5 relative."""

import re

import numpy as np
import pytest
from compiler_helpers import check_parity, clip_hops, real_clips, single

from core.errors import ModelFormatError
from core.features import dsp
from core.features.featurizer import FeaturizerConfig, build_featurizer
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node, chain

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def audio(shared_data):
    """Real speech, ~4 s, as 160-sample hops (float in [-1, 1))."""
    x = np.concatenate([clip_hops(p, 160).reshape(-1) for p in real_clips(shared_data, words=3)])
    return x.reshape(-1, 160)


@pytest.fixture(scope="module")
def feats(shared_data, devkit):
    """Real 80-mel log features of several clips (the DevKit featurizer), ~190 frames."""
    f = Interpreter(devkit[0])
    return np.concatenate([f.run(clip_hops(p, 512)) for p in real_clips(shared_data, words=4)])


@pytest.fixture(scope="module")
def spectra(audio):
    """Real magnitude spectra (257 bins) for the filterbank and log ops."""
    g = chain(
        [
            ("input", {"size": 160}, {}),
            ("frame_buffer", {"window_size": 512}, {}),
            ("window", {"kind": "hamming"}, {}),
            ("fft_mag", {"n_fft": 512}, {}),
            ("output", {}, {}),
        ]
    )
    return Interpreter(g).run(audio)


# ------------------------------------------------------------------------------ featurizer chain
def test_scale(audio):
    check_parity(single("scale", {"factor": 32768.0}, size=160), audio)


@pytest.mark.parametrize(
    "b, a", [([1.0, -0.97], [1.0]), ([0.5, 0.2, 0.1], [1.0, -0.5, 0.25]), ([2.0], [1.0]), ([0.3], [2.0, 0.4])]
)
def test_iir(audio, b, a):
    check_parity(single("iir", {"b": b, "a": a}, size=160), audio)


@pytest.mark.parametrize("hop, window", [(160, 400), (512, 512), (512, 256), (100, 1000)])
def test_frame_buffer(shared_data, hop, window):
    x = clip_hops(shared_data / "ell_examples" / "seven.wav", hop)
    check_parity(single("frame_buffer", {"window_size": window}, size=hop), x, rtol=0)


@pytest.mark.parametrize("kind", ["hamming", "hann", "none"])
def test_window(audio, kind):
    check_parity(single("window", {"kind": kind}, size=160), audio, rtol=0)


@pytest.mark.parametrize(
    "window, n_fft, power",
    [(512, 512, False), (400, 512, False), (512, 512, True), (512, 256, False), (64, 64, True)],
)
def test_fft_mag(audio, window, n_fft, power):
    g = chain(
        [
            ("input", {"size": 160}, {}),
            ("frame_buffer", {"window_size": window}, {}),
            ("window", {"kind": "hamming"}, {}),
            ("fft_mag", {"n_fft": n_fft, "power": power}, {}),
            ("output", {}, {}),
        ]
    )
    check_parity(g, audio, floor=_spectrum_scale(g, audio))


def _spectrum_scale(g: Graph, x: np.ndarray) -> np.ndarray:
    """Each frame's RMS bin (of |X|^2 / n for power spectra), per value: a float32 FFT's error is
    bounded relative to the spectrum's norm (Higham Thm 24.2), so every bin is compared at the
    scale of its frame's spectrum and the tolerance is O(log2 n) u of it."""
    ref = Interpreter(g).run(x).astype(np.float64)
    return np.broadcast_to(np.sqrt(np.mean(ref**2, axis=1, keepdims=True)), ref.shape) + 1e-30


@pytest.mark.parametrize("n_fft", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("power", [False, True])
def test_fft_mag_small_sizes(audio, n_fft, power):
    g = chain(
        [
            ("input", {"size": 160}, {}),
            ("frame_buffer", {"window_size": 16}, {}),
            ("fft_mag", {"n_fft": n_fft, "power": power}, {}),
            ("output", {}, {}),
        ]
    )
    check_parity(g, audio, floor=_spectrum_scale(g, audio))


def test_fft_and_filterbank_are_float32_vector_code():
    """The featurizer's FFT and filterbank run in float32 on whole registers of the target (no
    float64 left in them), and the banded filterbank's blocks hold every non-zero weight."""
    from core.compiler.build import assembly
    from core.compiler.lower import lower
    from core.compiler.lower_dsp import band_blocks
    from core.compiler.targets import Target

    g = build_featurizer(FeaturizerConfig(sample_rate=16000, window_size=512, hop_length=512, n_filters=80))
    t = Target("x86_64-unknown-linux-gnu", "x86-64-v4", "", 3, "v4")
    ir = lower(g, "f", options={"target": t})
    assert "double" not in ir and "<16 x float>" in ir
    asm = assembly(ir, t)
    assert "zmm" in asm and "vsqrtps" in asm
    assert not re.search(r"\tv(add|sub|mul|div|sqrt|fmadd\w*|cvtss2)[sp]d\t", asm)  # no float64 arithmetic
    w = dsp.mel_filterbank(80, 512, 16000).astype(np.float32)
    blocks = band_blocks(w, 16)
    dense = np.zeros(((80 + 15) // 16 * 16, w.shape[1]), np.float32)
    for f0, c0, n, tile in blocks:
        dense[f0 : f0 + 16, c0 : c0 + n] = tile.T
    np.testing.assert_array_equal(dense[:80], w)
    assert sum(n for _, _, n, _ in blocks) < 2 * w.shape[1]  # the bands, not the whole spectrum per block


@pytest.mark.parametrize("kind", ["mel", "linear", "dense"])
def test_filterbank(spectra, kind):
    if kind == "mel":
        w = dsp.mel_filterbank(80, 512, 16000)
    elif kind == "linear":
        w = dsp.linear_filterbank(40, 512, 16000)
    else:
        w = np.random.default_rng(0).uniform(0, 1, (20, 257)).astype(np.float32)
        wide = np.random.default_rng(0).uniform(0, 1, (20, 300)).astype(np.float32)
        with pytest.raises(ModelFormatError, match="weights"):  # wider than its input: malformed
            single("filterbank", {"kind": kind}, {"weights": wide}, size=257).validate()
    assert kind != "mel" or (w.sum(1) == 0).any(), "the mel bank keeps its empty low filters"
    check_parity(single("filterbank", {"kind": kind}, {"weights": w}, size=257), spectra)


@pytest.mark.parametrize("delta", [1.0, 0.0])
def test_log(spectra, delta):
    x = spectra.copy()
    x[:, :3] = 0.0  # log(0 + 0) = -inf must come out too
    check_parity(single("log", {"delta": delta}, size=257), x)


def test_dct(feats):
    check_parity(single("dct", {"n_out": 13}), feats)
    check_parity(single("dct", {}), feats)


@pytest.mark.parametrize(
    "options",
    [
        dict(preemphasis=0.97, dct=True, hop_length=160, n_filters=40),
        dict(power_spec=True, window_size=400, filterbank="linear", n_filters=40, hop_length=160),
        dict(auto_scale=False, log_delta=0.5, window="hann", hop_length=320),
        dict(filterbank="none", log=False, hop_length=256),
    ],
)
def test_featurizer_configs(shared_data, options):
    cfg = FeaturizerConfig(**options)
    x = np.concatenate([clip_hops(p, cfg.hop_length) for p in real_clips(shared_data, words=2)])
    check_parity(build_featurizer(cfg), x)


# ------------------------------------------------------------------------------ element-wise
@pytest.mark.parametrize(
    "fn", ["log", "exp", "sqrt", "abs", "neg", "square", "tanh", "sigmoid", "hard_sigmoid", "relu"]
)
def test_unary(feats, fn):
    x = feats - feats.mean()  # both signs, |x| up to ~10
    if fn in ("log", "sqrt"):
        x = np.abs(x)
    check_parity(single("unary", {"fn": fn}), x)


def test_unary_special_values():
    x = np.array(
        [[0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 100.0, -100.0, 88.0, -88.0, 89.0]], np.float32
    )
    for fn in ("log", "exp", "tanh", "sigmoid", "relu", "hard_sigmoid", "sqrt"):
        with np.errstate(all="ignore"):
            check_parity(single("unary", {"fn": fn}, size=x.shape[1]), x, floor=1e-30)


def _binary_graph(fn: str, const_shape: tuple[int, ...] | None, size: int = 80) -> Graph:
    rng = np.random.default_rng(3)
    nodes = [Node("x", "input", [], {"size": size})]
    if const_shape is None:  # two computed inputs
        nodes.append(Node("y", "unary", ["x"], {"fn": "tanh"}))
        other = "y"
    else:
        nodes.append(
            Node("c", "constant", [], {}, {"value": rng.uniform(0.5, 2.0, const_shape).astype(np.float32)})
        )
        other = "c"
    nodes.append(Node("b", "binary", ["x", other], {"fn": fn}))
    nodes.append(Node("o", "output", ["b"]))
    return Graph(nodes)


@pytest.mark.parametrize("fn", ["add", "sub", "mul", "div", "max", "min"])
@pytest.mark.parametrize("const_shape", [None, (80,), (1,)])
def test_binary(feats, fn, const_shape):
    check_parity(_binary_graph(fn, const_shape), feats)


def test_softmax_and_log_softmax(feats):
    for op in ("softmax", "log_softmax"):
        check_parity(single(op), feats)


def test_constant_identity_chain(feats):
    g = Graph(
        [
            Node("x", "input", [], {"size": 80}),
            Node("i", "identity", ["x"]),
            Node("c", "constant", [], {}, {"value": np.arange(80, dtype=np.float32)}),
            Node("b", "binary", ["i", "c"], {"fn": "add"}),
            Node("o", "output", ["b"]),
        ]
    )
    check_parity(g, feats, rtol=0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n_out", [31, 128, 7])
def test_dense(feats, bias, n_out):
    rng = np.random.default_rng(n_out)
    params = {"weight": rng.standard_normal((n_out, 80)).astype(np.float32) * 0.1}
    if bias:
        params["bias"] = rng.standard_normal(n_out).astype(np.float32)
    # a dot product is compared at the scale of its terms: sum |w x| (+ |b|), where the
    # reference's own float32 rounding lives
    scale = np.abs(feats) @ np.abs(params["weight"]).T + np.abs(params.get("bias", 0.0))
    check_parity(single("dense", {}, params), feats, floor=scale)
