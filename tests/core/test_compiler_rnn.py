"""Recurrent ops, the VAD and VAD-triggered resets, and the real DevKit model: host JIT vs the
interpreter frame by frame on real clips (probabilities within 1e-5 relative)."""

import numpy as np
import pytest
from compiler_helpers import check_parity, clip_hops, float32_rtol, real_clips, rel_err

from core.compiler.runtime import CompiledModel
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def feats(shared_data, devkit):
    """Real DevKit features of 12 clips (one continuous stream, ~370 frames)."""
    f = Interpreter(devkit[0])
    return np.concatenate([f.run(clip_hops(p, 512)) for p in real_clips(shared_data, words=8)])


def _vad_attrs(devkit) -> dict:
    return dict(devkit[1].by_op("vad")[0].attrs)


def _rnn(op, n_in, hidden, seed, **attrs):
    rng = np.random.default_rng(seed)
    g = 3 if op == "gru" else 4
    s = 1.0 / np.sqrt(hidden)
    return {
        k: rng.uniform(-s, s, shape).astype(np.float32)
        for k, shape in [
            ("w_ih", (g * hidden, n_in)),
            ("w_hh", (g * hidden, hidden)),
            ("b_ih", (g * hidden,)),
            ("b_hh", (g * hidden,)),
        ]
    }


def _rnn_graph(op, hidden, trigger_attrs=None, seed=0, **attrs) -> Graph:
    nodes = [Node("x", "input", [], {"size": 80})]
    inputs = ["x"]
    if trigger_attrs is not None:
        nodes.append(Node("v", "vad", ["x"], trigger_attrs))
        inputs.append("v")
    nodes.append(Node("r", op, inputs, {"hidden_size": hidden, **attrs}, _rnn(op, 80, hidden, seed)))
    nodes.append(
        Node(
            "d",
            "dense",
            ["r"],
            {},
            {"weight": np.random.default_rng(seed + 1).standard_normal((31, hidden)).astype(np.float32)},
        )
    )
    nodes.append(Node("s", "softmax", ["d"]))
    nodes.append(Node("o", "output", ["s"]))
    return Graph(nodes, {"kind": "classifier"})


def _resets(graph: Graph, feats: np.ndarray) -> int:
    v = Interpreter(graph).run_all(feats)["v"][:, 0]
    return int(((v[:-1] == 1) & (v[1:] == 0)).sum())


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("lbr", [True, False])
@pytest.mark.parametrize("hidden", [20, 128])
def test_gru_probabilities(feats, devkit, gate, lbr, hidden):
    g = _rnn_graph("gru", hidden, _vad_attrs(devkit), gate_activation=gate, linear_before_reset=lbr)
    assert _resets(g, feats) >= 3, "the VAD must reset the state several times in this stream"
    check_parity(g, feats, floor=0.0)


@pytest.mark.parametrize("trigger", [True, False])
@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_lstm_probabilities(feats, devkit, trigger, gate):
    g = _rnn_graph("lstm", 64, _vad_attrs(devkit) if trigger else None, gate_activation=gate)
    check_parity(g, feats, floor=0.0)


def test_gru_hidden_state_and_activation(feats):
    """The raw hidden state (no softmax) of a GRU with relu activation, no trigger: compared at
    the scale of the state (1% of its largest value), where float32 rounding of the recurrence lives."""
    g = Graph(
        [
            Node("x", "input", [], {"size": 80}),
            Node("r", "gru", ["x"], {"hidden_size": 40, "activation": "relu"}, _rnn("gru", 80, 40, 5)),
            Node("o", "output", ["r"]),
        ]
    )
    ref = Interpreter(g).run(feats * 0.1)
    check_parity(g, feats * 0.1, floor=1e-2 * np.abs(ref).max())


def test_vad_is_exact_on_real_features(feats, devkit):
    for attrs in (
        _vad_attrs(devkit),
        {
            **_vad_attrs(devkit),
            **{
                "tau_up": 1.54,
                "tau_down": 0.074326,
                "large_input": 2.40016,
                "gain_att": 0.002885,
                "threshold_up": 3.552713,
                "threshold_down": 0.931252,
                "level_threshold": 0.007885,
            },
        },
    ):
        g = Graph([Node("x", "input", [], {"size": 80}), Node("v", "vad", ["x"], attrs), Node("o", "output", ["v"])])
        out = check_parity(g, feats, rtol=0)
        assert set(np.unique(out)) == {0.0, 1.0}


def test_vad_reproduces_ell_golden_data(shared_data):
    expected, frames = [], []
    for line in (shared_data / "ell_examples" / "VadData.txt").read_text().splitlines():
        if line.strip():
            head, *pairs = line.split()
            expected.append(int(head.strip("()").split(",")[1]))
            v = np.zeros(40, np.float32)
            for kv in pairs:
                i, x = kv.split(":")
                v[int(i)] = float(x)
            frames.append(v)
    from core.features.vad import VadConfig

    attrs = VadConfig().to_dict() | {"frame_duration": 0.032, "sample_rate": 8000.0}
    g = Graph([Node("x", "input", [], {"size": 40}), Node("v", "vad", ["x"], attrs), Node("o", "output", ["v"])])
    out = CompiledModel(g, "vad").run(np.array(frames))
    assert out[:, 0].astype(int).tolist() == expected


# ------------------------------------------------------------------------------ the real DevKit model
def test_devkit_classifier_and_chain_on_real_clips(shared_data, devkit):
    """Featurizer + classifier (VAD + 2 GRU + dense + softmax), compiled separately and chained
    into one module, vs the interpreter, with state reset per clip and as one stream."""
    feat, clf, _ = devkit
    cf, cc, both = CompiledModel(feat, "feat"), CompiledModel(clf, "clf"), CompiledModel([feat, clf], "kws")
    fi, ci = Interpreter(feat), Interpreter(clf)
    vad_id = clf.by_op("vad")[0].id
    # worst error as a fraction of its float32 tolerance (features: absolute below 1, see below)
    resets, worst = 0, {"features": 0.0, "classifier": 0.0, "chain": 0.0}
    for path in real_clips(shared_data, per_word=1):
        x = clip_hops(path, 512)
        for m in (fi, ci, cf, cc, both):
            m.reset()
        f_ref = fi.run(x)
        vals = ci.run_all(f_ref)
        p_ref = vals[ci.output_id]
        v = vals[vad_id][:, 0]
        resets += int(((v[:-1] == 1) & (v[1:] == 0)).sum())
        # features: log(mel + 1) of an FFT magnitude, compared absolutely below 1; float32_rtol
        # models the float32 FFT's error relative to the spectrum's norm (a quiet band of a loud
        # frame gets the loud bins' absolute error) and the mel dot products' sqrt(n) u
        f_tol = float32_rtol(feat, x, 1.0)
        worst["features"] = max(worst["features"], rel_err(cf.run(x), f_ref, 1.0) / f_tol)
        worst["classifier"] = max(worst["classifier"], rel_err(cc.run(f_ref), p_ref) / float32_rtol(clf, f_ref))
        p_chain = both.run(x)
        worst["chain"] = max(worst["chain"], rel_err(p_chain, p_ref) / float32_rtol([feat, clf], x))
        assert p_chain.argmax(1).tolist() == p_ref.argmax(1).tolist()
    assert resets >= 10, "VAD-triggered resets must be exercised"
    assert max(worst.values()) <= 1.0, worst


def test_instances_are_independent(feats, devkit):
    """Two contexts on the same compiled code, interleaved frame by frame."""
    clf = devkit[1]
    a, b = CompiledModel(clf, "clf"), CompiledModel(clf, "clf")
    assert a.library is b.library
    ref = Interpreter(clf).run(feats)
    b.run(feats[::-1])  # b has a different history
    b.reset()
    out_a, out_b = [], []
    for f in feats:
        out_a.append(a.step(f))
        out_b.append(b.step(f))
    assert np.array_equal(out_a, out_b)
    assert rel_err(np.array(out_a), ref) <= float32_rtol(clf, feats)
    a.reset()
    assert np.array_equal(a.run(feats), np.array(out_a))


def test_keyword_spotter_backends(shared_data, devkit):
    from core.audio.wav import read_wav
    from core.pipeline import KeywordSpotter

    feat, clf, _ = devkit
    auto, interp = KeywordSpotter(feat, clf), KeywordSpotter(feat, clf, backend="interpreter")
    assert (auto.backend, auto.fallback_reason, interp.backend) == ("compiled", None, "interpreter")
    x, _ = read_wav(shared_data / "ell_examples" / "seven.wav")
    (fa, pa), (fi, pi) = auto.process(x), interp.process(x)
    frames = clip_hops(shared_data / "ell_examples" / "seven.wav", 512)
    assert rel_err(pa, pi) <= float32_rtol([feat, clf], frames)
    assert rel_err(fa, fi, 1.0) <= float32_rtol(feat, frames, 1.0)
    auto.reset()
    steps = [auto.step(b)[1] for b in clip_hops(shared_data / "ell_examples" / "seven.wav", 512)]
    assert np.array_equal(np.array(steps), pa)
    with pytest.raises(ValueError, match="backend"):
        KeywordSpotter(feat, clf, backend="gpu")


@pytest.mark.parametrize("op", ["gru", "lstm"])
def test_fp16_weights_are_the_float_code_on_rounded_weights(feats, devkit, op):
    """options weights=fp16: dense and recurrent weights stored as float16 (half the bytes), each
    widened exactly to float32 as it is loaded, the arithmetic unchanged: bit-for-bit the float
    code run on the weights rounded to float16 (round_weights_fp16), on a real stream with VAD
    resets. The rounding itself moves the probabilities (the test would pass vacuously if not)."""
    from core.compiler.kernels import round_weights_fp16
    from core.errors import CompileError

    g = _rnn_graph(op, 64, _vad_attrs(devkit))
    half = CompiledModel(g, "t_fp16", options={"weights": "fp16"})
    assert "x half]" in half.ir and "x half>" in half.ir
    rounded = CompiledModel(round_weights_fp16(g), "t_fp16_ref")
    got, want = half.run(feats), rounded.run(feats)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, CompiledModel(g, "t_fp32").run(feats))
    with pytest.raises(CompileError, match="weights must be one of"):
        CompiledModel(g, "t_bad", options={"weights": "bf16"})


def test_ensemble_is_the_mean_of_its_members(feats, devkit):
    """core.graph.ensemble: the DevKit (with its VAD) and another GRU as one graph, the mean of the
    two, in the interpreter (the same float32 operations: exact) and compiled; it saves and loads."""
    from core.errors import ModelFormatError
    from core.graph import modelfile
    from core.graph.ensemble import average_graphs

    a, b = devkit[1], _rnn_graph("gru", 64, _vad_attrs(devkit), seed=3)
    both = average_graphs([a, b])
    mean = (Interpreter(a).run(feats) + Interpreter(b).run(feats)) * np.float32(0.5)
    np.testing.assert_array_equal(Interpreter(both).run(feats), mean)
    check_parity(both, feats, name="ens")
    back = modelfile.from_bytes(modelfile.to_bytes(both))
    assert back.metadata["ensemble"] == 2 and back.categories == a.categories
    narrow = b.copy()
    narrow.node("d").params["weight"] = narrow.node("d").params["weight"][:12]
    with pytest.raises(ModelFormatError, match="differ"):
        average_graphs([a, narrow])
