"""add-vad: one VAD on the graph input feeding every GRU/LSTM, replacing (never stacking) an
existing one; frame timing from metadata or the featurizer; parameters from JSON and flags; bad
parameters are a clear error naming the parameter."""

import json

import numpy as np
import pytest

from core.cli import main as kws
from core.errors import KwsError
from core.features.vad import VadConfig
from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node
from core.vad.model import add_vad, frame_timing, model_vad, strip_vad
from core.vad.params import VadParams, load_params, save_params


def _rnn_params(op, n_in, hid, seed):
    g = 3 if op == "gru" else 4
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-0.4, 0.4, s).astype(np.float32) for k, s in
            (("w_ih", (g * hid, n_in)), ("w_hh", (g * hid, hid)), ("b_ih", (g * hid,)), ("b_hh", (g * hid,)))}


def trained_like(meta=True) -> Graph:
    """Our exporter's shape: input -> baked-in normalisation -> GRU -> GRU -> LSTM -> dense -> softmax."""
    nodes = [Node("input", "input", [], {"size": 8}),
             Node("norm_mean", "constant", [], {}, {"value": np.full(8, 0.5, np.float32)}),
             Node("norm_sub", "binary", ["input", "norm_mean"], {"fn": "sub"}),
             Node("norm_scale", "constant", [], {}, {"value": np.full(8, 2.0, np.float32)}),
             Node("norm", "binary", ["norm_sub", "norm_scale"], {"fn": "mul"}),
             Node("gru0", "gru", ["norm"], {"hidden_size": 6}, _rnn_params("gru", 8, 6, 0)),
             Node("gru1", "gru", ["gru0"], {"hidden_size": 6}, _rnn_params("gru", 6, 6, 1)),
             Node("lstm0", "lstm", ["gru1"], {"hidden_size": 5}, _rnn_params("lstm", 6, 5, 2)),
             Node("head", "dense", ["lstm0"], {}, {"weight": np.ones((3, 5), np.float32)}),
             Node("softmax", "softmax", ["head"]),
             Node("output", "output", ["softmax"])]
    md = {"kind": "classifier", "categories": ["a", "b", "c"]}
    if meta:
        md |= {"sample_rate": 16000, "hop_length": 512}
    return Graph(nodes, md)


def test_add_vad_rewires_every_recurrent_layer_from_the_graph_input():
    g = add_vad(trained_like(), VadParams(), 0.032, 16000)
    vads = g.by_op("vad")
    assert len(vads) == 1 and vads[0].inputs == ["input"]  # before the baked-in normalisation
    assert [n.inputs for n in g.nodes if n.op in ("gru", "lstm")] == [
        ["norm", vads[0].id], ["gru0", vads[0].id], ["gru1", vads[0].id]]
    assert vads[0].attrs["frame_duration"] == 0.032 and vads[0].attrs["sample_rate"] == 16000
    Interpreter(g).run(np.random.default_rng(0).uniform(0, 3, (20, 8)))  # it runs


def test_re_adding_replaces_the_vad_instead_of_stacking():
    once = add_vad(trained_like(), VadParams(), 0.032, 16000)
    p2 = VadParams().with_values(threshold_up=5.0, hold_frames=3)
    twice = add_vad(once, p2, 0.032, 16000)
    vads = twice.by_op("vad")
    assert len(vads) == 1
    assert model_vad(twice)[0] == p2
    assert all(n.inputs[1] == vads[0].id for n in twice.nodes if n.op in ("gru", "lstm"))
    plain = strip_vad(twice)
    assert not plain.by_op("vad") and all(len(n.inputs) == 1 for n in plain.nodes if n.op in ("gru", "lstm"))
    assert "vad" not in plain.metadata


def test_devkit_vad_is_replaced(devkit, shared_data):
    feat, clf, _ = devkit
    assert len(clf.by_op("vad")) == 1
    with pytest.raises(KwsError, match="--featurizer"):  # an ELL import does not state its hop
        frame_timing(clf)
    timing = frame_timing(clf, feat, shared_data / "ell_devkit_model" / "featurizer.ell")
    assert timing == (0.032, 16000)
    g = add_vad(clf, VadParams(), *timing)
    vads = g.by_op("vad")
    assert len(vads) == 1 and vads[0].inputs == [g.input_node.id]
    assert model_vad(g)[0] == VadParams() and model_vad(clf)[0] != VadParams()
    grus = g.by_op("gru")
    assert len(grus) == 2 and all(n.inputs[1] == vads[0].id for n in grus)


def test_frame_timing_needs_metadata_or_featurizer():
    assert frame_timing(trained_like()) == (0.032, 16000)
    bare = trained_like(meta=False)
    with pytest.raises(KwsError, match="--featurizer"):
        frame_timing(bare)
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    feat = build_featurizer(FeaturizerConfig(hop_length=160, n_filters=8))
    assert frame_timing(bare, feat) == (0.01, 16000)
    with pytest.raises(KwsError, match="emits 80 features"):
        frame_timing(bare, build_featurizer(FeaturizerConfig()))


def test_no_recurrent_layer_is_an_error():
    g = Graph([Node("x", "input", [], {"size": 4}), Node("o", "output", ["x"])])
    with pytest.raises(KwsError, match="no GRU or LSTM"):
        add_vad(g, VadParams(), 0.032, 16000)


def test_params_json_round_trip_partial_and_unknown(tmp_path):
    p = VadParams().with_values(tau_up=2.5, reset_on="onset", hold_frames=4)
    save_params(tmp_path / "p.json", p, {"note": "x"})
    assert load_params(tmp_path / "p.json") == p
    (tmp_path / "partial.json").write_text('{"threshold_up": 6}')
    assert load_params(tmp_path / "partial.json") == VadParams().with_values(threshold_up=6.0)
    (tmp_path / "bad.json").write_text('{"tau_upp": 1}')
    with pytest.raises(ValueError, match="tau_upp"):
        load_params(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text('{"gain_att": NaN}')
    with pytest.raises(ValueError, match="gain_att"):
        load_params(tmp_path / "nan.json")


def test_cli_add_vad_json_flags_and_replace(tmp_path, capsys):
    src = tmp_path / "clf.kwm"
    modelfile.save(trained_like(), src)
    (tmp_path / "p.json").write_text(json.dumps({"tau_up": 3.0, "threshold_up": 4.0}))
    out = tmp_path / "with_vad.kwm"
    assert kws(["add-vad", str(src), "-o", str(out), "--params", str(tmp_path / "p.json"),
                "--level-threshold", "0.02", "--hold-frames", "2"]) == 0
    text = capsys.readouterr().out
    assert "Adding a VAD node" in text and "gru0, gru1, lstm0" in text
    g = modelfile.load(out)
    assert model_vad(g)[0] == VadParams().with_values(tau_up=3.0, threshold_up=4.0, level_threshold=0.02,
                                                        hold_frames=2)
    again = tmp_path / "again.kwm"
    assert kws(["add-vad", str(out), "-o", str(again), "--from-model", "--tau-down", "0.2"]) == 0
    assert "Replacing the VAD" in capsys.readouterr().out
    g2 = modelfile.load(again)
    assert len(g2.by_op("vad")) == 1
    assert model_vad(g2)[0] == model_vad(g)[0].with_values(tau_down=0.2)


@pytest.mark.parametrize("flags, name", [
    (["--tau-up", "-1"], "tau_up"), (["--tau-down", "0"], "tau_down"), (["--gain-att", "nan"], "gain_att"),
    (["--threshold-down", "9"], "threshold_down"), (["--level-threshold", "inf"], "level_threshold"),
    (["--hold-frames", "-2"], "hold_frames"),
])
def test_cli_bad_parameters_name_the_parameter(tmp_path, capsys, flags, name):
    src = tmp_path / "clf.kwm"
    modelfile.save(trained_like(), src)
    out = tmp_path / "out.kwm"
    assert kws(["add-vad", str(src), "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and not out.exists()


def test_cli_import_without_timing_asks_for_the_featurizer(tmp_path, capsys):
    src = tmp_path / "bare.kwm"
    modelfile.save(trained_like(meta=False), src)
    assert kws(["add-vad", str(src), "-o", str(tmp_path / "o.kwm")]) == 2
    assert "--featurizer" in capsys.readouterr().err
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    feat = tmp_path / "feat.kwm"
    modelfile.save(build_featurizer(FeaturizerConfig(n_filters=8, hop_length=256)), feat)
    assert kws(["add-vad", str(src), "-o", str(tmp_path / "o.kwm"), "--featurizer", str(feat)]) == 0
    v = modelfile.load(tmp_path / "o.kwm").by_op("vad")[0]
    assert v.attrs["frame_duration"] == 256 / 16000
    assert VadConfig.from_dict({k: v.attrs[k] for k in VadConfig.__dataclass_fields__}) == VadConfig()
