"""New keyword panel end to end (offscreen): the word, clips picked from files, Train running
core.train.custom for real at toy size (espeak-ng only, one epoch of a tiny GRU) in a child process,
the summary it reports, Try it live (the live view runs the new model at its stored threshold); Stop
during training leaves the models folder's previous set untouched; the clips follow Collect's
folder and Record switches to Collect with the word."""

from __future__ import annotations

import shutil

import pytest

from core.graph import modelfile
from core.pipeline import DETECTOR_KEY
from kwsgui.keyword_task import MODEL_FILES

pytest.importorskip("torch")
JOB_MS = 120_000
TOY = {"engines": ("espeak",), "synth_per_word": 12, "negative_takes": 1, "user_copies": 1, "background_rows": 20,
       "epochs": 1, "init": "", "hidden_size": 8, "num_layers": 1, "calibration_minutes": 2.0, "jobs": 1}


@pytest.fixture
def bed_clips(data_dir):
    """4 real clips of "bed" from one training speaker of the bed/cat/happy set."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/sysdeps.sh)")
    return sorted((data_dir / "speech_commands_v0.01_bed_cat_happy" / "bed").glob("a331d9cb_*.wav"))[:4]


@pytest.fixture
def panel(open_panel, data_dir, tmp_path):
    from kwsgui.keyword_panel import KeywordPanel

    p = open_panel(KeywordPanel, 1100, 700)
    p.models_root.set_path(tmp_path / "models")
    p.noise.set_path(data_dir / "background_noise")
    for name, value in TOY.items():
        p.set_option(name, value)
    return p


def test_train_summary_and_try_it_live(run_job, panel, bed_clips, tmp_path):
    panel.word_edit.setText("bed")
    out = tmp_path / "models" / "bed"
    assert panel.outdir() == out and str(out) in panel.outdir_label.text()
    assert not panel.try_button.isEnabled()  # nothing trained yet
    assert panel.add_files(bed_clips) == out / "clips"
    assert panel.clips.text() == str(out / "clips") and "bed: 4 clips" in panel.clips_label.text()
    assert panel.config().epochs == 1 and panel.config().engines == ("espeak",)

    summary = run_job(panel, panel.train, JOB_MS)
    assert summary.completed, panel.error.text()
    r = panel.result
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(MODEL_FILES)
    assert (out / "categories.txt").read_text().split() == ["background", "unknown", "bed"]
    stored = modelfile.load(out / "classifier.kwm").metadata[DETECTOR_KEY]
    assert stored["threshold"] == r.threshold and stored["smoothing"] == r.smoothing
    assert r.user_clips == {"bed": 4} and stored["calibration"]["positives"] > 0
    rule = stored["calibration"]["clip_rule"]
    assert (rule["threshold"], rule["smoothing"]) == (r.threshold, r.smoothing) and rule["other_words"] > 0
    assert panel.result_label.text().startswith(
        f"threshold {r.threshold:g}, smoothing {r.smoothing}: finds {100 * rule['found']:.0f} % of")
    assert "Your clips: bed 4" in panel.detail_label.text()
    log = panel.log.toPlainText()
    assert "speaking bed with every offline voice" in log and "] calibrating" in log
    assert f"wrote {out / 'classifier.kwm'}" in log

    live = panel.live
    assert panel.try_button.isEnabled()
    with_signal = []
    panel.use_in_live.connect(lambda: with_signal.append(True))
    assert panel.try_live(), panel.error.text()
    m = live.models
    assert with_signal and m.classifier_path == str(out / "classifier.kwm")
    assert m.featurizer_path == str(out / "featurizer.kwm") and m.labels == ("background", "unknown", "bed")
    # the spin box shows 3 decimals; stored thresholds have at most 3 (core.evaluate.calibrate's grid)
    assert live.threshold_spin.value() == pytest.approx(r.threshold, abs=5e-4)
    assert live.smoothing_spin.value() == r.smoothing


def test_stop_during_training_keeps_the_previous_set(qtbot, panel, bed_clips, tmp_path, devkit):
    from core.models import load_model

    out = tmp_path / "models" / "bed"
    out.mkdir(parents=True)
    # the previous set in OUTDIR: real models (the DevKit's, as .kwm) that a stopped run must not touch
    modelfile.save(load_model(devkit["featurizer"]), out / "featurizer.kwm")
    modelfile.save(load_model(devkit["classifier"]), out / "classifier.kwm")
    shutil.copyfile(devkit["categories"], out / "categories.txt")
    before = {n: (out / n).read_bytes() for n in MODEL_FILES}
    clips = tmp_path / "clips"
    clips.mkdir()
    for f in bed_clips:
        (clips / f.name).symlink_to(f)
    panel.word_edit.setText("bed")
    panel.clips.set_path(clips)
    panel.set_option("epochs", 500)  # Stop lands in the middle of training (the trainer returns early on Stop)
    assert panel.try_button.isEnabled()  # the previous set is there
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert panel.train(), panel.error.text()
        assert not panel.train_button.isEnabled() and not panel.try_button.isEnabled()
        qtbot.waitUntil(lambda: "] training" in panel.log.toPlainText(), timeout=JOB_MS)  # the stage line
        panel.stop_job()
    s = blocker.args[0]
    assert s.cancelled and not s.completed and s.error is None and panel.result is None
    assert "] calibrating" not in panel.log.toPlainText()  # stopped in training, not after it
    assert {n: (out / n).read_bytes() for n in MODEL_FILES} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".kws-set")]  # no staging folder left
    assert panel.result_label.text().startswith("stopped") and panel.train_button.isEnabled()


def test_clips_follow_collect_and_record_switches_to_collect(qtbot, settings, tmp_path, data_dir):
    from kwsgui.app import MainWindow

    collected = tmp_path / "collected"
    (collected / "cat").mkdir(parents=True)
    for f in sorted((data_dir / "speech_commands_v0.01_bed_cat_happy" / "cat").glob("*.wav"))[:3]:
        (collected / "cat" / f.name).symlink_to(f)
    settings.setValue("collect/folder", str(collected))
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    p = win.keyword_panel
    p.models_root.set_path(tmp_path / "models")
    p.word_edit.setText("cat")
    assert p.clips.text() == str(collected / "cat") and "cat: 3 clips" in p.clips_label.text()
    p.word_edit.setText("happy")  # no clips of it yet: the field keeps the last folder
    assert p.clips.text() == str(collected / "cat")
    p.record_button.click()
    assert win.current_panel == "collect" and win.collect_panel.label_edit.text() == "happy"
    p.word_edit.setText("")
    assert not p.train() and "type the word" in p.error.text()
    p.word_edit.setText("cat")
    p.noise.set_path("")
    assert not p.train() and "noise" in p.error.text()
    win.close()
