"""The main window: every panel is there and remembered; closing it while a job runs stops the
job cleanly and keeps what it wrote (training saves its checkpoint and model)."""

from __future__ import annotations

import numpy as np

from core.data.dataset import Dataset, featurizer_info, save_dataset
from core.features.featurizer import FeaturizerConfig, build_featurizer

PANELS = ["live", "dataset", "collect", "browse", "keyword", "training", "models", "vad", "compile", "evaluate"]


def test_panels_and_the_last_one_shown_is_remembered(qtbot, settings):
    from kwsgui.app import MainWindow

    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    assert list(win.panels) == PANELS
    assert [win.nav.item(i).text() for i in range(win.nav.count())] == \
        ["Live", "Dataset", "Collect", "Browse", "New keyword", "Training", "Models", "VAD", "Compile", "Evaluate"]
    win.show_panel("vad")
    assert win.stack.currentWidget() is win.vad_panel
    win.close()
    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    assert again.current_panel == "vad"
    again.close()


def test_closing_during_training_stops_it_and_keeps_the_files(qtbot, settings, tmp_path):
    from kwsgui.app import MainWindow

    rng = np.random.default_rng(3)
    fmeta = featurizer_info(build_featurizer(FeaturizerConfig()))
    x = rng.normal(size=(48, 40, 80)).astype(np.float32)
    y = np.repeat(np.arange(2), 24).astype(np.int64)
    save_dataset(tmp_path / "ds" / "training.npz", Dataset(x, y, ("a", "b"), fmeta, {}))
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    p = win.train_panel
    p.dataset.set_path(tmp_path / "ds")
    p.outdir.set_path(tmp_path / "run")
    for k, v in (("epochs", 10_000), ("hidden_size", 8), ("num_layers", 1), ("batch_size", 16)):
        p.set_option(k, v)
    epochs = []
    assert p.start(), p.error.text()
    p.job.worker.partial.connect(epochs.append)
    qtbot.waitUntil(lambda: len(epochs) >= 1, timeout=60_000)
    job = p.job
    win.close()  # blocks until the job has stopped and written its files
    assert not job.is_running() and p.job is None
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and (tmp_path / "run" / "model.kwm").is_file()
    assert not [f for f in (tmp_path / "run").iterdir() if f.name.endswith(".tmp")]


def test_bundled_models_detect_the_demo(qtbot, settings):
    """What `make run` shows: the bundled models, the demo wav, the spectrogram moving and the
    demo's last word detected."""
    import pytest

    from core.models import DEFAULT_CLASSIFIER, DEMO_WAV
    from kwsgui.app import MainWindow

    if not DEFAULT_CLASSIFIER.exists():
        pytest.skip(f"no bundled classifier yet ({DEFAULT_CLASSIFIER}; `make default-model`)")
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    view = win.live_view
    assert view.models.classifier_path == str(DEFAULT_CLASSIFIER) and view.error_label.isHidden()
    with qtbot.waitSignal(view.stream_finished, timeout=60_000) as blocker:
        assert view.play(DEMO_WAV, realtime=False, play_audio=False)
    assert blocker.args[0].error is None and view.spectrogram.columns > 100
    assert "DETECTED marvin" in view.log.toPlainText()
    win.close()
