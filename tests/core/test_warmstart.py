"""Warm start (`kws train --init`, core/train/warmstart.py) and the hard-sigmoid GRU (arch.HardGRU):
the DevKit loaded into PyTorch gives the DevKit's outputs; hard-sigmoid students export to our
graph and to ONNX unchanged; outputs are matched to new categories by name; what cannot be a
starting point is refused with the file's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from compiler_helpers import float32_rtol, rel_err
from test_train import FAST, _make

from core.audio.wav import read_wav
from core.data.dataset import Dataset, save_dataset
from core.errors import DataError
from core.features.featurizer import featurize
from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.models import load_model
from core.train import arch
from core.train.config import TrainConfig
from core.train.trainer import Trainer, load_splits
from core.train.warmstart import adopt_architecture, apply_init, load_init
from core.vad.model import strip_vad

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEVKIT = DATA / "ell_devkit_model"
needs_data = pytest.mark.skipif(not DEVKIT.is_dir(), reason="../shared/data/ell_devkit_model is missing")


pytestmark = pytest.mark.usefixtures("one_thread")


@needs_data
def test_devkit_in_pytorch_gives_the_devkits_outputs():
    layout, cats = load_init(DEVKIT / "classifier.ell")
    cfg = adopt_architecture(TrainConfig(hidden_size=128, normalize=True), layout)
    assert (cfg.architecture, cfg.num_layers, cfg.hidden_size, cfg.gate_activation) == ("gru", 2, 100, "hard_sigmoid")
    model = arch.build(80, len(cats), cfg)
    info = apply_init(model, layout, cats, cats)
    assert info["fresh"] == [] and info["copied"] == cats
    audio, sr = read_wav(DATA / "ell_examples" / "seven.wav")
    frames = featurize(load_model(DEVKIT / "featurizer.ell"), audio)
    ref_graph = strip_vad(load_model(DEVKIT / "classifier.ell"))
    ref = Interpreter(ref_graph).run(frames)
    with torch.no_grad():
        got = model.eval()(torch.from_numpy(frames)[None]).exp()[0].numpy()
    # two float32 implementations of the same GRU: within the backward-error tolerance of this model
    floor = 1e-6
    assert rel_err(got, ref, floor) <= float32_rtol(ref_graph, frames, floor)
    assert cats[int(got[-1].argmax())] == "seven"
    # and our export of that PyTorch model is the DevKit's graph again (hard-sigmoid gates kept)
    from core.train.export import rnn_graph

    g = rnn_graph(model, 80)
    assert {n.attrs.get("gate_activation") for n in g.nodes if n.op == "gru"} == {"hard_sigmoid"}
    assert rel_err(Interpreter(g).run(frames), ref, floor) <= float32_rtol(ref_graph, frames, floor)


def test_hard_sigmoid_gru_learns_and_exports(tmp_path):
    d = tmp_path / "ds"
    for name, n, seed in (("training", 240, 0), ("validation", 60, 1)):
        save_dataset(d / f"{name}.npz", _make(n, seed))
    cfg = TrainConfig(gate_activation="hard_sigmoid", normalize=True, **FAST)
    tr = Trainer(cfg, load_splits(d), tmp_path / "out")
    tr.fit()
    res = tr.finish()
    assert res.log[-1]["val_accuracy"] > 0.8
    x = _make(3, 9).features
    with torch.no_grad():
        ref = tr.model.eval().cpu()(torch.from_numpy(x)).numpy()
    m = onnx.load(res.outputs["onnx"])
    grus = [n for n in m.graph.node if n.op_type == "GRU"]
    assert grus and all([a.decode() for a in next(at.strings for at in n.attribute if at.name == "activations")]
                        == ["HardSigmoid", "Tanh"] for n in grus)
    sess = ort.InferenceSession(res.outputs["onnx"], providers=["CPUExecutionProvider"])
    g = modelfile.load(res.outputs["model"])
    floor = 1e-6
    tol = float32_rtol(g, x[0], floor)
    assert rel_err(np.exp(sess.run(None, {"features": x})[0]), np.exp(ref), floor) <= tol
    for row in range(len(x)):
        assert rel_err(Interpreter(g).run(x[row]), np.exp(ref[row]), floor) <= tol


def _reordered(ds: Dataset, categories: tuple[str, ...]) -> Dataset:
    """The same rows with the classes listed in another order (labels follow their names)."""
    index = {c: i for i, c in enumerate(categories)}
    labels = np.array([index[ds.categories[y]] for y in ds.labels], np.int64)
    return Dataset(ds.features, labels, categories, ds.featurizer, ds.meta)


def test_init_matches_outputs_by_name_and_fine_tunes(tmp_path):
    d = tmp_path / "ds"
    for name, n, seed in (("training", 240, 0), ("validation", 60, 1)):
        save_dataset(d / f"{name}.npz", _make(n, seed))
    first = Trainer(TrainConfig(normalize=True, **FAST), load_splits(d), tmp_path / "a")
    first.fit()
    a = first.finish()
    # the same task with the classes in another order and one class the first model never had
    cats = ("down", "new", "background", "up")
    d2 = tmp_path / "ds2"
    for name, n, seed in (("training", 240, 0), ("validation", 60, 1)):
        save_dataset(d2 / f"{name}.npz", _reordered(_make(n, seed), cats))
    cfg = TrainConfig(init=a.outputs["model"], hidden_size=64, num_layers=2, normalize=True,
                      **{k: v for k, v in FAST.items() if k not in ("hidden_size", "num_layers", "epochs")},
                      epochs=1)
    cfg = TrainConfig(**{**cfg.to_dict(), "learning_rate": 1e-4})
    second = Trainer(cfg, load_splits(d2), tmp_path / "b")
    assert (second.cfg.hidden_size, second.cfg.num_layers) == (FAST["hidden_size"], FAST["num_layers"])
    src, dst = first.model.cpu(), second.model.cpu()
    for j, c in enumerate(cats):
        if c == "new":
            continue
        i = first.categories.index(c)
        assert torch.equal(dst.head.weight[j], src.head.weight[i])
        assert float(dst.head.bias[j].detach()) == float(src.head.bias[i].detach())
    assert torch.equal(dst.norm.mean, src.norm.mean) and torch.equal(dst.rnn.weight_hh_l0, src.rnn.weight_hh_l0)
    assert second.result.config["init_categories_fresh"] == ["new"]
    # before any step, the warm-started model already knows the task (labels of rows it has seen)
    from core.train.trainer import evaluate

    val = load_splits(d2).val
    acc0, _ = evaluate(second.model, torch.from_numpy(val.features), torch.from_numpy(val.labels))
    assert acc0 > 0.8
    second.fit()
    assert second.finish().log[-1]["val_accuracy"] > 0.8


def test_what_cannot_be_a_starting_point_is_refused(tmp_path):
    d = tmp_path / "ds"
    save_dataset(d / "training.npz", _make(60, 0))
    tcn = Trainer(TrainConfig(architecture="tcn", tcn_channels=8, num_layers=1, epochs=1, batch_size=32),
                  load_splits(d), tmp_path / "tcn")
    tcn.fit()
    path = tcn.finish().outputs["model"]
    with pytest.raises(DataError, match=f"{path}.*cannot start training from this model"):
        Trainer(TrainConfig(init=path, epochs=1), load_splits(d), tmp_path / "x")
    with pytest.raises(DataError, match="no such model"):
        Trainer(TrainConfig(init=str(tmp_path / "missing.kwm"), epochs=1), load_splits(d), tmp_path / "x")
    if DEVKIT.is_dir():  # 80 DevKit features per frame, 8 in this dataset
        with pytest.raises(DataError, match="reads 80 features per frame, this dataset has 8"):
            Trainer(TrainConfig(init=str(DEVKIT / "classifier.ell"), epochs=1), load_splits(d), tmp_path / "x")


def test_init_layers_only_gives_a_new_output_layer(tmp_path):
    d = tmp_path / "ds"
    save_dataset(d / "training.npz", _make(120, 0))
    first = Trainer(TrainConfig(normalize=True, **{**FAST, "epochs": 1}), load_splits(d), tmp_path / "a")
    first.fit()
    a = first.finish()
    second = Trainer(TrainConfig(init=a.outputs["model"], init_outputs=False, epochs=1), load_splits(d), tmp_path / "b")
    assert second.result.config["init_categories_fresh"] == list(second.categories)
    src, dst = first.model.cpu(), second.model.cpu()
    assert torch.equal(dst.rnn.weight_ih_l0, src.rnn.weight_ih_l0)
    assert not torch.equal(dst.head.weight, src.head.weight)
