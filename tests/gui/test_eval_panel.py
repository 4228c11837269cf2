"""Evaluate panel end to end (offscreen): a list of real Speech Commands clips through the
DevKit model in each mode, the running pass rate, the confusion matrix, the misclassified clips
(clicking one plays it, or says clearly why it cannot), Stop, and a missing list."""

from __future__ import annotations

import re

import pytest

JOB_MS = 120_000
WORDS = ("seven", "bed", "marvin", "yes")


@pytest.fixture
def list_file(tmp_path, data_dir):
    """4 words x 4 real clips, absolute paths (label = the parent folder)."""
    root = data_dir / "speech_commands_v0.01_sample"
    lines = [str(p) for w in WORDS for p in sorted((root / w).glob("*.wav"))[:4]]
    lf = tmp_path / "testing_list.txt"
    lf.write_text("\n".join(lines) + "\n")
    return lf


@pytest.fixture
def panel(open_panel):
    from kwsgui.eval_panel import EvalPanel

    return open_panel(EvalPanel, 1100, 700)


@pytest.mark.parametrize("mode", ["reset", "vad"])
def test_pass_rate_confusion_and_misclassified(run_job, qtbot, panel, list_file, mode):
    panel.list_file.set_path(list_file)
    panel.set_mode(mode)
    summary = run_job(panel, panel.evaluate)
    assert summary.completed, panel.error.text()
    r = panel.report
    assert len(r.results) == 16 and r.mode == mode
    assert r.rate > 0.5  # the DevKit model knows these words
    m = re.match(r"pass rate (\d+\.\d\d) %  \((\d+)/16\)", panel.rate_label.text())
    assert m and float(m.group(1)) == pytest.approx(100 * r.rate, abs=0.01) and int(m.group(2)) == r.passed
    assert panel.heat.matrix.sum() == 16 and panel.heat.matrix.shape[1] == panel.heat.matrix.shape[0] + 1
    assert panel.wrong.count() == 16 - r.passed
    assert ("VAD: the model's own VAD" in panel.detail_label.text()) == (mode == "vad")


def test_click_plays_or_explains_and_stop(run_job, qtbot, panel, list_file, tmp_path):
    panel.list_file.set_path(list_file)
    panel.limit.setValue(0)
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert panel.evaluate()
        panel.stop_job()
    assert blocker.args[0].cancelled and len(panel.results) < 16

    clip = next(iter(list_file.read_text().split()))
    with qtbot.waitSignal(panel.player.finished, timeout=30_000) as played:
        panel.play(clip)
    s = played.args[0]
    assert s.completed or ("cannot play the clip" in panel.error.text() and s.error)

    panel.list_file.set_path(tmp_path / "missing_list.txt")
    summary = run_job(panel, panel.evaluate)
    assert summary.error and "missing_list.txt" in panel.error.text()
