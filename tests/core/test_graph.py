"""Model graph, file format and interpreter: round trips, bad files, recurrent semantics."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from core.errors import ModelFormatError
from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node, chain


def _rnn_graph(op, hidden=8, n_in=5, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    g = 3 if op == "gru" else 4
    params = {
        "w_ih": rng.standard_normal((g * hidden, n_in)) * 0.4,
        "w_hh": rng.standard_normal((g * hidden, hidden)) * 0.4,
        "b_ih": rng.standard_normal(g * hidden) * 0.1,
        "b_hh": rng.standard_normal(g * hidden) * 0.1,
    }
    nodes = [Node("x", "input", [], {"size": n_in})]
    nodes.append(Node("r", op, ["x"], {"hidden_size": hidden, **attrs},
                      {k: v.astype(np.float32) for k, v in params.items()}))
    nodes.append(Node("y", "output", ["r"]))
    return Graph(nodes), params


@pytest.mark.parametrize("op", ["gru", "lstm"])
def test_rnn_matches_pytorch_frame_by_frame(op):
    g, p = _rnn_graph(op)
    m = (torch.nn.GRU if op == "gru" else torch.nn.LSTM)(5, 8, batch_first=True)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(p["w_ih"])), m.weight_hh_l0.copy_(torch.tensor(p["w_hh"]))
        m.bias_ih_l0.copy_(torch.tensor(p["b_ih"])), m.bias_hh_l0.copy_(torch.tensor(p["b_hh"]))
    x = np.random.default_rng(1).standard_normal((25, 5)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)[None])[0][0].numpy()
    rt = Interpreter(g)
    stream = np.stack([rt.step(f) for f in x])
    np.testing.assert_allclose(stream, ref, rtol=1e-5, atol=1e-6)
    rt.reset()
    np.testing.assert_allclose(rt.run(x), stream, rtol=1e-6, atol=1e-7)


def test_gru_onnx_style_reset_gate_differs_from_pytorch_style():
    g1, _ = _rnn_graph("gru", linear_before_reset=True)
    g0, _ = _rnn_graph("gru", linear_before_reset=False)
    x = np.random.default_rng(2).standard_normal((10, 5)).astype(np.float32)
    assert not np.allclose(Interpreter(g1).run(x), Interpreter(g0).run(x))


@pytest.mark.parametrize("op", ["gru", "lstm"])
def test_reset_trigger_zeroes_state_after_the_falling_edge(op):
    """1 -> 0 on the trigger: that frame's output is normal, the next frame starts from zero state."""
    from core.graph.ops import OPS

    g, _ = _rnn_graph(op, n_in=4)
    node, spec = g.node("r"), OPS[op]
    x = np.random.default_rng(3).standard_normal((8, 4)).astype(np.float32)
    trig = np.array([0, 1, 1, 1, 0, 0, 1, 1], np.float32)[:, None]
    with_trigger = spec.run(node, [x, trig], spec.init_state(node, [(4,), (1,)]))
    plain = spec.run(node, [x], spec.init_state(node, [(4,)]))
    fresh = spec.run(node, [x[5:]], spec.init_state(node, [(4,)]))
    np.testing.assert_array_equal(with_trigger[:5], plain[:5])  # up to and including the falling edge
    np.testing.assert_allclose(with_trigger[5:], fresh, rtol=1e-6)  # then as if started fresh
    assert not np.allclose(with_trigger[5], plain[5])


def test_model_file_round_trip_is_exact(tmp_path):
    g, _ = _rnn_graph("gru")
    g.metadata = {"categories": ["a", "b"], "sample_rate": 16000, "nested": {"k": [1, 2]}}
    path = modelfile.save(g, tmp_path / "m.kwm")
    g2 = modelfile.load(path)
    assert g2.metadata == g.metadata
    for a, b in zip(g.nodes, g2.nodes):
        assert (a.id, a.op, a.inputs, a.attrs) == (b.id, b.op, b.inputs, b.attrs)
        for k in a.params:
            assert np.array_equal(a.params[k], b.params[k]) and a.params[k].dtype == b.params[k].dtype
    assert not list(tmp_path.glob("*.tmp")), "no temporary files left behind"


def test_the_same_model_saves_to_the_same_bytes(monkeypatch):
    """No save time inside: rebuilding a model that did not change leaves its file as it was."""
    import time

    g = _rnn_graph("gru")[0]
    first = modelfile.to_bytes(g)
    monkeypatch.setattr(time, "time", lambda: 2.0e9)  # another day, as zipfile sees it
    assert modelfile.to_bytes(g) == first
    assert modelfile.from_bytes(first).nodes[1].op == g.nodes[1].op


def _zip(files: dict) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return b.getvalue()


def _good_doc():
    g, _ = _rnn_graph("gru")
    data = modelfile.to_bytes(g)
    z = zipfile.ZipFile(io.BytesIO(data))
    return {n: z.read(n) for n in z.namelist()}


@pytest.mark.parametrize("mutate, message", [
    (lambda f: b"not a zip at all", "not a zip"),
    (lambda f: modelfile_truncated(), "not a zip"),
    (lambda f: _zip({"other.txt": b"x"}), "no model.json"),
    (lambda f: _zip({**f, "model.json": b"{broken"}), "unreadable"),
    (lambda f: _zip({**f, "model.json": json.dumps({"format": "x"}).encode()}), "not a kwsgui model"),
    (lambda f: _zip({**f, "model.json": _doc_with(f, version=99)}), "newer"),
    (lambda f: _zip({k: v for k, v in f.items() if not k.startswith("arrays/0")}), "missing"),
    (lambda f: _zip({**f, "model.json": _doc_with(f, op="warp_drive")}), "unknown op"),
    (lambda f: _zip({**f, "arrays/0.npy": b"\x93NUMPY garbage"}), "malformed"),
])
def test_bad_model_files_raise_model_format_error(tmp_path, mutate, message):
    p = tmp_path / "bad.kwm"
    p.write_bytes(mutate(_good_doc()))
    with pytest.raises(ModelFormatError, match=message) as e:
        modelfile.load(p)
    assert str(p) in str(e.value)


def modelfile_truncated():
    data = modelfile.to_bytes(_rnn_graph("gru")[0])
    return data[: len(data) // 2]


def _doc_with(files, version=None, op=None):
    doc = json.loads(files["model.json"])
    if version is not None:
        doc["version"] = version
    if op is not None:
        doc["nodes"][1]["op"] = op
    return json.dumps(doc).encode()


def test_pickled_arrays_are_refused(tmp_path):
    files = _good_doc()
    b = io.BytesIO()
    np.lib.format.write_array(b, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    p = tmp_path / "evil.kwm"
    p.write_bytes(_zip({**files, "arrays/0.npy": b.getvalue()}))
    with pytest.raises(ModelFormatError):
        modelfile.load(p)


def test_graph_validation_errors():
    with pytest.raises(ModelFormatError, match="not defined before"):
        Graph([Node("y", "output", ["x"]), Node("x", "input", [], {"size": 2})]).validate()
    with pytest.raises(ModelFormatError, match="duplicate"):
        Graph([Node("x", "input", [], {"size": 2}), Node("x", "output", ["x"])]).validate()
    with pytest.raises(ModelFormatError, match="lacks parameter|bad attributes"):
        chain([("input", {"size": 3}, {}), ("dense", {}, {}), ("output", {}, {})]).validate()


def test_softmax_and_log_softmax_agree():
    x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32) * 10
    sm = Interpreter(chain([("input", {"size": 6}, {}), ("softmax", {}, {}), ("output", {}, {})])).run(x)
    lsm = Interpreter(chain([("input", {"size": 6}, {}), ("log_softmax", {}, {}), ("output", {}, {})])).run(x)
    np.testing.assert_allclose(np.exp(lsm), sm, rtol=1e-5)
    np.testing.assert_allclose(sm.sum(axis=1), 1, rtol=1e-6)
