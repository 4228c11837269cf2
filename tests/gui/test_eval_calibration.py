"""Evaluate panel, Calibrate tab (offscreen): real Speech Commands clips and background noise through
the DevKit model, the DET plot (one curve per smoothing, every threshold, the chosen point ringed,
the target line), Store in model (in place for a .kwm; a new .kwm beside an .ell), the live view
taking the stored threshold, Stop, and what is refused."""

from __future__ import annotations

import math

import pytest

from core.evaluate.calibrate import DEFAULT_SMOOTHINGS, DEFAULT_THRESHOLDS
from core.graph import modelfile
from core.models import load_model
from core.pipeline import DETECTOR_KEY

JOB_MS = 120_000
WORDS = ("seven", "bed", "marvin", "yes")


@pytest.fixture
def words_dir(tmp_path, data_dir):
    """4 words x 3 real clips in word folders (links to ../shared/data, nothing copied)."""
    root = data_dir / "speech_commands_v0.01_sample"
    for w in WORDS:
        (tmp_path / "words" / w).mkdir(parents=True)
        for f in sorted((root / w).glob("*.wav"))[:3]:
            (tmp_path / "words" / w / f.name).symlink_to(f)
    return tmp_path / "words"


@pytest.fixture
def panel(open_panel, data_dir):
    from kwsgui.eval_panel import EvalPanel

    p = open_panel(EvalPanel, 1100, 700)
    p.tabs.setCurrentIndex(1)
    p.calib_noise.set_path(data_dir / "background_noise")
    return p


def test_det_plot_and_store_in_place(run_job, panel, words_dir, tmp_path, devkit):
    kwm = tmp_path / "classifier.kwm"  # the DevKit classifier as a .kwm: stored into in place
    modelfile.save(load_model(devkit["classifier"]), kwm)
    live = panel.live
    assert live.load_classifier(kwm), live.error_label.text()
    lf = tmp_path / "held_out.txt"
    lf.write_text("".join(f"{p}\n" for w in WORDS for p in sorted((words_dir / w).iterdir())))
    panel.list_file.set_path(lf)  # the calibration's clips default to the panel's list
    assert not panel.store_button.isEnabled()
    assert run_job(panel, panel.calibrate, JOB_MS).completed, panel.error.text()

    r = panel.calibration
    cal, c = r.calibration, r.calibration.chosen
    assert r.clips == 12 and cal.positives == 12 and r.source == str(lf)
    assert cal.smoothings == list(DEFAULT_SMOOTHINGS) and sorted(panel.det.curves) == list(DEFAULT_SMOOTHINGS)
    floor = cal.no_fa_floor
    for n, item in panel.det.curves.items():
        pts = sorted(cal.curve(n), key=lambda p: p.threshold)
        assert len(item.xData) == len(DEFAULT_THRESHOLDS) == len(pts)
        assert list(item.xData) == [max(p.fa_per_hour, floor) for p in pts]
        assert list(item.yData) == [100 * p.frr for p in pts]
    assert list(panel.det.chosen.xData) == [max(c.fa_per_hour, floor)] and list(panel.det.chosen.yData) == [100 * c.frr]
    assert panel.det.target.value() == pytest.approx(math.log10(max(cal.target_fa_per_hour, floor)), abs=1e-12)
    assert panel.det.legend.items  # a name for every curve
    assert panel.calib_label.text().startswith(f"threshold {c.threshold:g}, smoothing {c.smoothing}:")
    assert "background_noise" in panel.calib_detail.text()  # the DevKit's non-keyword class, named

    before = modelfile.load(kwm)
    assert panel.store_button.isEnabled() and panel.store_in_model() == kwm
    after = modelfile.load(kwm)
    assert after.metadata[DETECTOR_KEY]["threshold"] == c.threshold
    assert after.metadata[DETECTOR_KEY]["smoothing"] == c.smoothing
    assert after.metadata[DETECTOR_KEY]["calibration"]["positives"] == 12
    assert [n.op for n in after.nodes] == [n.op for n in before.nodes] and after.output_size == before.output_size
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []  # written as one rename
    # the live view reloaded it: its controls show the stored values (3 decimals, as the grid has)
    assert live.models.classifier_path == str(kwm)
    assert live.threshold_spin.value() == pytest.approx(c.threshold, abs=5e-4)
    assert live.smoothing_spin.value() == c.smoothing


def test_folder_store_beside_an_ell_stop_and_refusals(qtbot, run_job, panel, words_dir, tmp_path, devkit):
    panel.calib_clips.set_path(words_dir)  # a folder of word folders
    panel.target_fa.setValue(0.0)
    assert run_job(panel, panel.calibrate, JOB_MS).completed, panel.error.text()
    r = panel.calibration
    assert r.clips == 12 and r.calibration.target_fa_per_hour == 0.0
    ell = devkit["classifier"].read_bytes()
    assert panel.store_in_model(tmp_path / "x.onnx") is None and ".kwm" in panel.error.text()
    dest = tmp_path / "calibrated.kwm"
    assert panel.store_in_model(dest) == dest and devkit["classifier"].read_bytes() == ell  # the .ell untouched
    assert modelfile.load(dest).metadata[DETECTOR_KEY]["threshold"] == r.calibration.chosen.threshold

    shown = panel.det.calibration
    panel.gap_min.setValue(30.0)
    panel.gap_max.setValue(40.0)  # a stream of minutes: Stop lands in it
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert panel.calibrate(), panel.error.text()
        assert not panel.calib_button.isEnabled() and not panel.store_button.isEnabled()
        panel.stop_job()
    assert blocker.args[0].cancelled and panel.calibration is None and panel.det.calibration is shown
    assert not panel.store_button.isEnabled() and panel.store_in_model() is None and "calibrate first" in \
        panel.error.text()

    panel.gap_min.setValue(50.0)
    assert not panel.calibrate() and "gaps" in panel.error.text()
    panel.calib_clips.set_path("")
    panel.list_file.set_path("")
    assert not panel.calibrate() and "held-out clips" in panel.error.text()
    panel.calib_clips.set_path(tmp_path / "missing_list.txt")
    panel.gap_min.setValue(0.5)
    summary = run_job(panel, panel.calibrate, JOB_MS)
    assert summary.error and "missing_list.txt" in panel.error.text()
    gone = tmp_path / "gone_list.txt"  # names clips that are not there
    gone.write_text("seven/nobody_nohash_0.wav\n")
    panel.calib_clips.set_path(gone)
    summary = run_job(panel, panel.calibrate, JOB_MS)
    assert summary.error and "none of its 1 clips exists" in panel.error.text()
