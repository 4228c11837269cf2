"""Models panel end to end (offscreen): a tiny PyTorch GRU exported to ONNX in the test is
imported on the worker, summarised (nodes, shapes, parameters, multiply-adds), matches PyTorch,
gets a VAD added / removed, is saved and becomes the live view's classifier; a broken file is
one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.quiet import onnx_export_warnings

JOB_MS = 60_000


@pytest.fixture(scope="module")
def tiny_gru(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(80, 16, batch_first=True)
            self.fc = torch.nn.Linear(16, 3)

        def forward(self, x):  # (batch, time, 80) -> (batch, time, 3) log-probabilities
            y, _ = self.gru(x)
            return torch.log_softmax(self.fc(y), dim=-1)

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny_gru.onnx"
    axes = {"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}}
    with onnx_export_warnings():
        torch.onnx.export(net, (torch.zeros(1, 5, 80),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes=axes)
    return net, path


@pytest.fixture
def panel(qtbot, settings, view):
    from kwsgui.models_panel import ModelsPanel

    p = ModelsPanel(settings=settings, live=view)
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    yield p
    p.shutdown()


def run(qtbot, panel, start):
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert start(), panel.error.text()
    return blocker.args[0]


def test_import_summary_vad_save_and_live(qtbot, panel, view, tiny_gru, tmp_path):
    import torch

    net, path = tiny_gru
    cats = tmp_path / "categories.txt"
    cats.write_text("background_noise\nyes\nno\n")
    panel.categories.set_path(cats)
    summary = run(qtbot, panel, lambda: panel.import_model(path))
    assert summary.completed, panel.error.text()
    ops = panel.node_ops()
    assert ops[0] == "input" and "gru" in ops and ops[-2:] == ["softmax", "output"]
    n_params = sum(p.numel() for p in net.parameters())
    assert f"{n_params:,} parameters" in panel.totals.text() and "VAD: none" in panel.totals.text()
    assert "tiny_gru.onnx" in panel.heading.text() and "input 80 → output 3" in panel.heading.text()
    assert "categories (3)" in panel.meta.text()

    x = np.random.default_rng(1).normal(size=(12, 80)).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(net.fc(net.gru(torch.from_numpy(x)[None])[0]), -1)[0].numpy()
    np.testing.assert_allclose(Interpreter(panel.graph).run(x), ref, atol=1e-5)

    assert panel.add_vad(), panel.error.text()  # timing from the live view's featurizer (32 ms)
    assert "vad" in panel.node_ops() and "VAD: yes" in panel.totals.text()
    assert panel.graph.by_op("vad")[0].attrs["frame_duration"] == pytest.approx(0.032)
    assert panel.remove_vad() and "vad" not in panel.node_ops()
    assert panel.add_vad()

    out = tmp_path / "tiny.kwm"
    assert panel.save(out)
    saved = modelfile.load(out)
    assert saved.by_op("vad") and saved.categories == ["background_noise", "yes", "no"]

    shown = []
    panel.use_in_live.connect(lambda: shown.append(True))
    assert panel.use_in_live_view(), panel.error.text()
    assert shown and view.models.labels == ("background_noise", "yes", "no")
    assert view.vad_label.text() == "VAD"


def test_broken_onnx_is_one_clear_error(qtbot, panel, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07this is not protobuf")
    failures = []
    panel.job_failed.connect(failures.append)
    summary = run(qtbot, panel, lambda: panel.import_model(bad))
    assert summary.error and "broken.onnx" in summary.error and failures == [summary.error]
    assert panel.error.isVisible() and panel.graph is None and not panel.save_button.isEnabled()


def test_metadata_is_a_tree_and_a_failed_import_leaves_no_old_summary(qtbot, panel, tmp_path):
    """The bundled classifier's metadata (featurizer config, training provenance, VAD) reads as
    key / value rows, not a Python dict; a failed import after it leaves no old table behind."""
    from core.models import DEFAULT_CLASSIFIER

    assert run(qtbot, panel, lambda: panel.import_model(DEFAULT_CLASSIFIER)).completed, panel.error.text()
    tree = panel.meta_tree
    top = {tree.topLevelItem(i).text(0): tree.topLevelItem(i) for i in range(tree.topLevelItemCount())}
    assert {"kind", "featurizer", "training"} <= set(top) and "categories" not in top
    assert top["kind"].text(1) == "classifier"
    feat = {top["featurizer"].child(i).text(0): top["featurizer"].child(i).text(1)
            for i in range(top["featurizer"].childCount())}
    assert feat["sample_rate"] == "16000" and feat["filterbank"] == "mel" and feat["n_fft"] == "–"
    assert top["featurizer"].isExpanded()
    texts = [it.text(1) for it in tree.findItems("*", Qt.MatchWildcard | Qt.MatchRecursive, 1)]
    assert not any(t.startswith("{") or "': " in t for t in texts)  # no dict reprs
    assert "{" not in panel.meta.text() and panel.table.rowCount() > 0

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07this is not protobuf")
    assert run(qtbot, panel, lambda: panel.import_model(bad)).error
    assert panel.table.rowCount() == 0 and tree.topLevelItemCount() == 0 and panel.totals.text() == ""
    assert panel.heading.text().startswith("No model imported") and panel.graph is None
