"""VAD panel end to end (offscreen): a real clip featurized on the worker, sliders that change
the plotted level/floor/signal at once, parameters from the live classifier, Auto-tune on real
labelled clips (core.vad.tune) with progress, Apply to the live view, Save / Load."""

from __future__ import annotations

import numpy as np
import pytest

from core.models import DEMO_WAV
from core.vad.model import model_vad
from core.vad.params import VadParams, load_params


@pytest.fixture
def panel(open_panel):
    from kwsgui.vad_panel import VadPanel

    return open_panel(VadPanel, 1200, 760)


def test_slider_changes_the_plotted_signal(run_job, qtbot, panel):
    panel.set_params(VadParams())
    assert run_job(panel, lambda: panel.load_clip(DEMO_WAV)).completed, panel.error.text()
    n = len(panel.clip.features)
    assert n == 263 and panel.plots.image.image.shape == (263, 80)
    _, before = panel.plots.signal_curve.getData()
    voiced = int(panel.trace.signals.sum())
    assert 0 < voiced < n and len(panel.trace.segments) >= 2  # words and pauses in the demo
    lx, ly = panel.plots.level_curve.getOriginalDataset()
    assert len(lx) == n and np.isfinite(ly).all()

    box = panel.sliders["level_threshold"]
    box.slider.setValue(int(0.95 * box.STEPS))  # drag the slider itself: ~0.63, the loud words only
    assert box.value() == pytest.approx(10 ** -0.2, rel=1e-3)
    _, after = panel.plots.signal_curve.getData()
    assert 0 < int(panel.trace.signals.sum()) < voiced and not np.array_equal(before, after)
    _, floor_line = panel.plots.min_curve.getOriginalDataset()  # getData is log10 here
    assert floor_line[0] == pytest.approx(box.value())
    panel.sliders["threshold_up"].box.setValue(10.0)  # the numeric box moves the slider and the plot
    assert panel.sliders["threshold_up"].slider.value() == panel.sliders["threshold_up"]._to_pos(10.0)
    _, on = panel.plots.on_curve.getOriginalDataset()
    np.testing.assert_allclose(on, np.maximum(10.0 * panel.trace.floors, 1e-6))
    assert panel.trace_ms < 50.0 and "segment" in panel.info.text()

    panel.sliders["threshold_down"].box.setValue(60.0)  # above threshold_up: refused, named
    assert "threshold_down" in panel.error.text()


def test_live_params_autotune_apply_save(run_job, qtbot, panel, view, data_dir, tmp_path):
    assert panel.params_from_live()
    own = model_vad(view.models.classifier)[0]
    assert panel.params().vad == own.vad

    root = data_dir / "speech_commands_v0.01_sample"
    lf = tmp_path / "tune_list.txt"
    lf.write_text("".join(f"{p}\n" for w in ("seven", "bed", "yes", "marvin") for p in sorted((root / w).glob(
        "*.wav"))[:2]))
    panel.tune_list.set_path(lf)
    panel.trials.setValue(12)
    progress = []
    panel.job_bar.bar.valueChanged.connect(progress.append)
    summary = run_job(panel, panel.auto_tune)
    assert summary.completed, panel.error.text()
    r = panel.tune_result
    assert len(r.trials) == 12 and r.best.score.key() >= r.start.score.key()
    assert panel.params() == r.best.params and "12 trials" in panel.tune_label.text()
    assert "continuous" in panel.tune_label.text() and progress

    assert panel.apply_to_live(), panel.error.text()
    assert model_vad(view.models.classifier)[0] == panel.params()
    assert view.models.classifier_path.endswith(" + VAD")

    out = tmp_path / "vad.json"
    assert panel.save_params(out)
    assert load_params(out) == panel.params()
    panel.set_params(VadParams())
    assert panel.load_params(out) and panel.params() == load_params(out)
    assert panel.save_classifier(tmp_path / "clf_vad.kwm") and (tmp_path / "clf_vad.kwm").is_file()


def test_record_is_off_once_no_microphone_was_found(panel, view):
    mic = pytest.importorskip("core.audio.microphone", reason="core.audio.microphone is not in this build")
    from core.errors import KwsError

    try:
        found = mic.default_input_device()
    except KwsError:
        found = None
    if found is not None:
        pytest.skip(f"this machine has a microphone ({found.name})")
    assert panel.record_button.isEnabled()  # not looked yet
    view.source.set_kind("mic")  # the live view lists the devices: none
    assert not panel.record_button.isEnabled() and "No microphone" in panel.record_button.toolTip()
    assert not panel.record() and "no microphone" in panel.error.text() and panel.job is None
    panel.set_busy(False)  # a job ending does not bring it back
    assert not panel.record_button.isEnabled()
