"""Post-training int8 quantization (core.quantize, core.graph.ops_q8, core.compiler.lower_q8) on
the real DevKit model and real clips: the rounding rule, calibration, the .kwm round trip with
int8 arrays, the interpreter and the host JIT bit-exact wherever no transcendental function is
involved, and `kws quantize`."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from compiler_helpers import check_parity, clip_hops, real_clips

from core.compiler.runtime import CompiledModel
from core.errors import ModelFormatError
from core.evaluate.passrate import decide
from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node
from core.graph.ops_q8 import matmul_q8, quantize
from core.quantize import calibrate, quantize_graph, quantize_rows, weight_bytes

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips(shared_data, devkit):
    """DevKit features of 33 real clips (ELL's examples + one Speech Commands clip of each word), one per clip."""
    f = Interpreter(devkit[0])
    out = []
    for p in real_clips(shared_data)[:33]:
        f.reset()
        out.append((p, f.run(clip_hops(p, 512))))
    return out


@pytest.fixture(scope="module")
def qdevkit(devkit, clips):
    return quantize_graph(devkit[1], calibrate(devkit[1], [x for _, x in clips]))


def test_rounding_rule_is_round_half_even_with_clamp():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.4, 1e9, -1e9, 3.49999, np.nan], np.float32)
    q = quantize(x, np.float32(1.0), 127)
    np.testing.assert_array_equal(q[:10], [0, 2, 2, 0, -2, 126, 127, 127, -127, 3])
    assert q[10] == -127  # NaN clamps low, in the compiled code too
    rng = np.random.default_rng(0)
    v = rng.normal(0, 3000, 10000).astype(np.float32)  # int16: an independent reference (numpy rint is half-even)
    inv = np.float32(1 / 0.37)
    np.testing.assert_array_equal(quantize(v, inv, 32767), np.clip(np.rint(v * inv), -32767, 32767))


def test_weights_per_row_are_int8_within_half_a_step():
    w = np.random.default_rng(1).normal(0, 1, (7, 20)).astype(np.float32)
    w[3] = 0
    q, s = quantize_rows(w)
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and s[3] == 1.0
    assert np.all(np.abs(q * s[:, None] - w) <= 0.5 * s[:, None] * (1 + 1e-6))


def test_quantized_devkit_keeps_the_float_decisions(devkit, clips, qdevkit):
    _, clf, cats = devkit
    fl, q8 = Interpreter(clf), Interpreter(qdevkit)
    same = 0
    for _, x in clips:
        fl.reset(), q8.reset()
        same += decide(fl.run(x), cats)[0] == decide(q8.run(x), cats)[0]
    # int8 steps are 1/127 of each row's and each activation's range: decisions flip only on near ties
    assert same >= len(clips) - 1, f"{same}/{len(clips)} clips decided alike"
    ops = [n.op for n in qdevkit.nodes]
    assert ops.count("gru_q8") == 2 and ops.count("dense_q8") == 1 and "gru" not in ops
    mats = [(n.params[k], m.params[k]) for n, m in zip(clf.nodes, qdevkit.nodes)
            for k in ("w_ih", "w_hh", "weight") if k in n.params]
    assert all(b.dtype == np.int8 and a.nbytes == 4 * b.nbytes for a, b in mats)
    assert weight_bytes(qdevkit) < weight_bytes(clf) / 3.5  # biases and per-row scales stay float32


def test_int8_model_file_round_trip(qdevkit, clips, tmp_path):
    path = modelfile.save(qdevkit, tmp_path / "q.kwm")
    back = modelfile.load(path)
    for a, b in zip(qdevkit.nodes, back.nodes):
        assert a.op == b.op and a.attrs == b.attrs
        for k in a.params:
            assert a.params[k].dtype == b.params[k].dtype
            np.testing.assert_array_equal(a.params[k], b.params[k])
    x = clips[0][1]
    np.testing.assert_array_equal(Interpreter(qdevkit).run(x), Interpreter(back).run(x))


def _swap_param(graph: Graph, node_id: str, key: str, value) -> Graph:
    g = graph.copy()
    g.node(node_id).params[key] = value
    return g


def test_int8_only_where_the_op_declares_it(qdevkit, devkit, tmp_path):
    gru = qdevkit.by_op("gru_q8")[0]
    cases = [
        (_swap_param(qdevkit, gru.id, "w_ih", gru.params["w_ih"].astype(np.float32)), "must be a int8 array"),
        (_swap_param(qdevkit, gru.id, "w_ih_scale", gru.params["w_ih_scale"].astype(np.int8)),
         "must be a float32 array"),
        (_swap_param(devkit[1], devkit[1].by_op("gru")[0].id, "w_hh",
                     devkit[1].by_op("gru")[0].params["w_hh"].astype(np.int8)), "must be a float32 array"),
    ]
    for g, msg in cases:
        data = modelfile.to_bytes(g)
        with pytest.raises(ModelFormatError, match=msg) as e:
            modelfile.from_bytes(data, "bad.kwm")
        assert "bad.kwm" in str(e.value)
    # wider integers stay refused in the file, int8 bodies are counted in bytes
    import io

    from core.graph.validate import read_npy
    for arr, msg in [(np.zeros(4, "<i4"), "not little-endian float32 or int8"), (np.zeros(4, ">f4"), "float32")]:
        b = io.BytesIO()
        np.lib.format.write_array(b, arr)
        with pytest.raises(ModelFormatError, match=msg):
            read_npy(b.getvalue(), "x.npy")
    b = io.BytesIO()
    np.lib.format.write_array(b, np.zeros(5, np.int8))
    with pytest.raises(ModelFormatError, match="needs 5 bytes"):
        read_npy(b.getvalue()[:-1], "x.npy")


def test_accumulator_overflow_is_refused():
    k = 520  # 520 * 127 * 32767 > 2^31
    g = Graph([Node("x", "input", [], {"size": k}),
               Node("d", "dense_q8", ["x"], {"x_scale": 0.1, "x_bits": 16},
                    {"weight": np.ones((3, k), np.int8), "w_scale": np.ones(3, np.float32)}),
               Node("o", "output", ["d"])])
    with pytest.raises(ModelFormatError, match="overflow"):
        g.validate()
    g.node("d").attrs["x_bits"] = 8
    g.validate()


def _exact_graph(qdevkit, lbr=True, x_bits=8, h_bits=8, op="gru_q8") -> Graph:
    """The DevKit's first quantized GRU with gates and activation that both runners compute exactly
    (hard_sigmoid: a multiply and an add; relu), then its dense head on the GRU's 100 outputs."""
    gru = qdevkit.by_op("gru_q8")[0]
    head = qdevkit.by_op("dense_q8")[0]
    attrs = dict(gru.attrs) | {"gate_activation": "hard_sigmoid", "activation": "relu",
                               "linear_before_reset": lbr, "x_bits": x_bits, "h_bits": h_bits}
    params = dict(gru.params)
    if op == "lstm_q8":  # four gates from the GRU's rows (3 x 100) and the first 100 again
        attrs.pop("linear_before_reset")
        params = {k: np.concatenate([v, v[:100]]) for k, v in params.items()}
    return Graph([Node("x", "input", [], {"size": 80}), Node("r", op, ["x"], attrs, params),
                  Node("d", "dense_q8", ["r"], dict(head.attrs), dict(head.params)), Node("o", "output", ["d"])])


@pytest.mark.parametrize("variant", [dict(), dict(lbr=False), dict(x_bits=16, h_bits=16), dict(op="lstm_q8")])
def test_compiled_int8_is_bit_exact_with_the_interpreter(qdevkit, clips, variant):
    g = _exact_graph(qdevkit, **variant)
    x = np.concatenate([c for _, c in clips[:12]])  # one stream of 370 real frames
    got = check_parity(g, x, rtol=0.0, name="q8exact")  # rtol 0: the same integers, the same float32 steps
    ref = Interpreter(g).run(x)
    np.testing.assert_array_equal(got, ref)
    # and the int8 matmul alone, on the real features
    d = g.node("d")
    h = Interpreter(g).run_all(x)["r"]
    y = matmul_q8(h, d.params["weight"], d.attrs["x_scale"], 8, d.params["w_scale"], None)
    np.testing.assert_array_equal(y, ref)


def test_compiled_int8_devkit_matches_the_interpreter(qdevkit, clips, devkit):
    """tanh differs by ulps between numpy and the compiled math (as for float models); the integer
    steps are exact, so the probabilities agree within the float32 analysis and decide alike."""
    cats = devkit[2]
    model = CompiledModel(qdevkit, "q8devkit")
    rt = Interpreter(qdevkit)
    for _, x in clips[:12]:
        model.reset(), rt.reset()
        assert decide(model.run(x), cats)[0] == decide(rt.run(x), cats)[0]
    check_parity(qdevkit, np.concatenate([c for _, c in clips[:12]]), name="q8devkit2")


def test_kws_quantize_reports_both_pass_rates_and_writes_the_model(shared_data, tmp_path):
    d = shared_data / "ell_devkit_model"
    sample = shared_data / "speech_commands_v0.01_sample"
    wavs = [sorted((sample / w).glob("*.wav"))[0] for w in ("yes", "no", "seven", "bed", "cat", "happy")]
    lst = tmp_path / "calib.txt"
    lst.write_text("".join(f"{p}\n" for p in wavs))
    out = tmp_path / "clf_int8.kwm"
    r = subprocess.run([sys.executable, "-m", "core", "quantize", d / "classifier.ell", "-f", d / "featurizer.ell",
                        "--calibrate", lst, "-o", out], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "float: pass rate" in r.stdout and " int8: pass rate" in r.stdout
    assert "calibrated on 6 clips" in r.stdout and "x smaller" in r.stdout
    q = modelfile.load(out)
    assert q.categories[0] == "background_noise" and q.metadata["quantization"]["calibration_clips"] == 6
    bad = subprocess.run([sys.executable, "-m", "core", "quantize", d / "classifier.ell", "-f", d / "featurizer.ell",
                          "--calibrate", lst, "-o", tmp_path / "x.onnx"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "x.onnx" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.onnx").exists()
