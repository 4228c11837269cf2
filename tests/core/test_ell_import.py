"""The real ELL DevKit model: import, detect, pass rate; and bad ELL files."""

import json

import numpy as np
import pytest

from core.errors import ModelFormatError, ModelImportError
from core.evaluate.passrate import evaluate_clips, labelled_clips
from core.graph import modelfile
from core.importers.ell import load_ell
from core.pipeline import KeywordSpotter


def test_devkit_structure(devkit):
    feat, clf, cats = devkit
    assert [n.op for n in feat.nodes] == ["input", "frame_buffer", "window", "fft_mag", "filterbank", "constant",
                                          "binary", "unary", "output"]
    grus = clf.by_op("gru")
    assert len(grus) == 2 and all(g.attrs["hidden_size"] == 100 for g in grus)
    vad = clf.by_op("vad")
    assert len(vad) == 1 and all(g.inputs[1] == vad[0].id for g in grus), "GRUs are reset by the VAD"
    assert feat.input_size == 512 and clf.input_size == 80 and clf.output_size == 31 == len(cats)


def test_gru_weights_reordered_from_ell_zrn_to_rzn(devkit, shared_data):
    raw = json.loads((shared_data / "ell_devkit_model" / "classifier.ell").read_text())
    nodes = {n["id"]: n for n in raw["model"]["nodes"]}
    gru = next(n for n in raw["model"]["nodes"] if n["_type"].startswith("GRUNode"))
    w_ell = np.array(nodes[gru["inputWeights"]["input"].split(".")[0]]["values"], np.float32).reshape(300, 80)
    ours = devkit[1].by_op("gru")[0].params["w_ih"]
    np.testing.assert_array_equal(ours[:100], w_ell[100:200])  # r
    np.testing.assert_array_equal(ours[100:200], w_ell[:100])  # z
    np.testing.assert_array_equal(ours[200:], w_ell[200:])  # n


@pytest.mark.parametrize("word", ["seven", "bed"])
def test_detects_example_words(devkit, shared_data, word):
    from core.audio.wav import read_wav

    feat, clf, cats = devkit
    spotter = KeywordSpotter(feat, clf)
    x, _ = read_wav(shared_data / "ell_examples" / f"{word}.wav")
    _, probs = spotter.process(x)
    assert probs.shape == (31, 31)
    t, i = np.unravel_index(probs.argmax(), probs.shape)
    assert cats[i] == word and probs[t, i] > 0.6


def test_pass_rate_on_300_real_clips(devkit, shared_data):
    feat, clf, cats = devkit
    clips = labelled_clips(shared_data / "speech_commands_v0.01_sample")
    assert len(clips) == 300
    result = evaluate_clips(KeywordSpotter(feat, clf), cats, clips, reset=True)
    assert result.rate >= 0.90, f"pass rate {result.rate:.3f}"


def test_kwm_round_trip_gives_identical_outputs(devkit, tmp_path, shared_data):
    from core.audio.wav import read_wav

    feat, clf, _ = devkit
    x, _ = read_wav(shared_data / "ell_examples" / "seven.wav")
    a = KeywordSpotter(feat, clf).process(x)[1]
    f2 = modelfile.load(modelfile.save(feat, tmp_path / "f.kwm"))
    c2 = modelfile.load(modelfile.save(clf, tmp_path / "c.kwm"))
    assert np.array_equal(a, KeywordSpotter(f2, c2).process(x)[1])


def _ell(nodes, out="2"):
    return {"_type": "Map", "model": {"nodes": nodes}, "inputNames": ["input"], "inputIds": ["1"],
            "outputNames": ["output"], "outputElements": [f"{out}.output"]}


def _inp(i="1", size=4):
    return {"_type": "InputNode<float>", "id": i, "layout": {"size": [size]}}


def _port(node, src):
    return {"nodeId": node, "name": "input", "input": f"{src}.output"}


def test_unknown_node_type_names_type_and_id(tmp_path):
    p = tmp_path / "m.ell"
    p.write_text(json.dumps(_ell([_inp(), {"_type": "WarpDriveNode<float>", "id": "7", "input": _port("7", "1")},
                                  {"_type": "OutputNode<float>", "id": "2", "input": _port("2", "7")}])))
    with pytest.raises(ModelImportError, match=r"node 7.*WarpDriveNode"):
        load_ell(p)


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"), ('{"a": 1}', "no model.nodes"), ("", "invalid JSON"),
])
def test_malformed_ell_files(tmp_path, content, message):
    p = tmp_path / "m.ell"
    p.write_text(content)
    with pytest.raises(ModelFormatError, match=message):
        load_ell(p)


def test_dangling_port_reference(tmp_path):
    p = tmp_path / "m.ell"
    p.write_text(json.dumps(_ell([_inp(), {"_type": "OutputNode<float>", "id": "2", "input": _port("2", "99")}])))
    with pytest.raises(ModelFormatError, match="missing node 99"):
        load_ell(p)
