"""Training panel end to end (offscreen): the real Trainer on a tiny learnable dataset: one
epoch puts points on the curves, the test accuracy and confusion matrix appear, the model goes
to the live view with one click; Resume continues the checkpoint; Stop still writes the model."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.dataset import Dataset, featurizer_info, save_dataset
from core.features.featurizer import FeaturizerConfig, build_featurizer

CLASSES = ("background_noise", "yes", "no")
JOB_MS = 120_000


def make_split(rng, per_class: int) -> Dataset:
    """Rows of 40 frames x 80 features; class k lifts mel bands 20k..20k+20 (easy to learn)."""
    x = rng.normal(0.0, 0.3, size=(per_class * len(CLASSES), 40, 80)).astype(np.float32)
    y = np.repeat(np.arange(len(CLASSES)), per_class).astype(np.int64)
    for i, k in enumerate(y):
        x[i, 10:30, 20 * k: 20 * k + 20] += 2.0
    fmeta = featurizer_info(build_featurizer(FeaturizerConfig()))
    return Dataset(x, y, CLASSES, fmeta, {"format": "test"})


@pytest.fixture
def dataset_dir(tmp_path):
    rng = np.random.default_rng(7)
    d = tmp_path / "ds"
    for split, n in (("training", 32), ("validation", 6), ("testing", 6)):
        save_dataset(d / f"{split}.npz", make_split(rng, n))
    return d


@pytest.fixture
def panel(qtbot, settings, view):
    from kwsgui.train_panel import TrainPanel

    p = TrainPanel(settings=settings, live=view)
    qtbot.addWidget(p)
    p.resize(1200, 760)
    p.show()
    yield p
    p.shutdown()


def small(panel, dataset_dir, outdir, epochs):
    panel.dataset.set_path(dataset_dir)
    panel.outdir.set_path(outdir)
    for name, value in (("hidden_size", 16), ("num_layers", 1), ("batch_size", 16), ("epochs", epochs),
                        ("optimizer", "adam"), ("learning_rate", 0.01)):
        panel.set_option(name, value)


def run(qtbot, panel, start):
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert start(), panel.error.text()
    return blocker.args[0]


def test_every_option_has_a_field(panel):
    from dataclasses import fields

    from core.train.config import TrainConfig

    assert set(panel.fields) == {f.name for f in fields(TrainConfig)}
    assert panel.config() == panel._saved_config()  # the form round-trips


def axis_texts(heat) -> list[str]:
    """The words drawn along the confusion matrix's two class axes."""
    from PyQt5.QtGui import QPainter, QPixmap

    heat.resize(400, 400)
    pix = QPixmap(400, 400)
    p = QPainter(pix)
    try:
        return [t for name in ("left", "bottom") for *_, t in heat.getAxis(name).generateDrawSpecs(p)[2]]
    finally:
        p.end()


def test_one_epoch_then_resume_then_live_view(qtbot, panel, view, dataset_dir, tmp_path):
    assert panel.heat.matrix is None and axis_texts(panel.heat) == []  # no numbers before a matrix
    out = tmp_path / "run"
    small(panel, dataset_dir, out, epochs=1)
    summary = run(qtbot, panel, panel.start)
    assert summary.completed, panel.error.text()
    assert panel.curves.points == 1 and np.isfinite(panel.curves.values["loss"][0])
    assert panel.report.epochs == 1 and (out / "checkpoint.pt").is_file() and (out / "model.kwm").is_file()
    assert panel.result_label.text().startswith("test accuracy ")
    assert panel.heat.matrix.shape == (3, 3) and panel.heat.matrix.sum() == 18
    assert set(axis_texts(panel.heat)) == set(CLASSES)  # (pyqtgraph may leave out a crowded name)
    assert panel.lr_label.text() == "lr 1.00e-02" and "epoch time" in panel.time_label.text()

    panel.set_option("epochs", 2)  # Resume: the checkpoint's epoch is replayed, one more is trained
    summary = run(qtbot, panel, lambda: panel.start(resume=True))
    assert summary.completed, panel.error.text()
    assert panel.curves.epochs == [1, 2] and panel.report.epochs == 2
    assert "resuming after epoch 1" in panel.log.toPlainText()

    assert panel.use_button.isEnabled()
    shown = []
    panel.use_in_live.connect(lambda: shown.append(True))
    assert panel.use_in_live_view(), panel.error.text()
    assert shown and view.models.classifier is not None and view.models.labels == CLASSES
    assert view.models.classifier_path == str(out / "model.kwm")


def test_stop_keeps_the_finished_epochs_and_bad_options_are_refused(qtbot, panel, dataset_dir, tmp_path):
    out = tmp_path / "stopped"
    small(panel, dataset_dir, out, epochs=500)

    def stop_after_first_epoch(_epoch):
        panel.stop_job()

    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert panel.start()
        panel.job.worker.partial.connect(stop_after_first_epoch)
    summary = blocker.args[0]
    assert summary.cancelled and not summary.completed and summary.error is None
    assert panel.report is not None and panel.report.interrupted and 1 <= panel.report.epochs < 500
    assert (out / "model.kwm").is_file() and (out / "checkpoint.pt").is_file()
    assert panel.error.isHidden()

    panel.fields["learning_rate"].setText("fast")
    assert not panel.start() and "learning_rate" in panel.error.text()
    panel.set_option("learning_rate", 0.01)
    panel.fields["weight_decay"].setText("-1")
    assert not panel.start() and "weight_decay" in panel.error.text()


def test_teacher_fields_reach_the_config(panel, shared_data):
    """The Teacher group: model files through path fields, mode, weights; a missing teacher file is
    refused with its name when training starts."""
    teacher = shared_data / "ell_devkit_model" / "classifier.ell"
    panel.set_option("teacher", str(teacher))
    panel.set_option("teacher_mode", "online")
    panel.set_option("mix_prob", 0.25)
    cfg = panel.config()
    assert (cfg.teacher, cfg.teacher_mode, cfg.mix_prob, cfg.teacher_featurizer) == (str(teacher), "online", 0.25, "")
    panel.set_option("mix_prob", 0.5)
    panel.set_option("teacher", "")
    with pytest.raises(ValueError, match="mix_prob"):  # mixtures need a teacher to label them
        panel.config()
