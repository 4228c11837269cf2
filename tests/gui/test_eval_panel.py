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


def test_continuous_mode_plays_the_shuffled_order_and_every_class_is_named(run_job, panel, list_file):
    """The continuous modes play the list in core's shuffled order (seed 0, as `kws eval`), and say
    so; unticked, the list's order. Every row and column of the confusion matrix carries its class
    name (no indices, none skipped)."""
    from core.evaluate.passrate import play_order, read_list

    clips = read_list(list_file)
    panel.list_file.set_path(list_file)
    panel.set_mode("reset")
    assert not panel.shuffle.isEnabled()  # the order does not matter there
    panel.set_mode("continuous")
    assert panel.shuffle.isEnabled() and panel.shuffle.isChecked()
    assert run_job(panel, panel.evaluate).completed, panel.error.text()
    shuffled, how = play_order(clips, continuous=True)
    assert [r.path for r in panel.report.results] == [str(p) for p, _ in shuffled] != [str(p) for p, _ in clips]
    assert how in panel.detail_label.text() and panel.report.order == how == "shuffled (seed 0)"
    assert "a word carried into the next clip counts for its own" in panel.detail_label.text()
    rows, cols = panel.heat.getAxis("left").names, panel.heat.getAxis("bottom").names
    used = panel.heat.matrix.shape[0]
    assert [n for _, n in rows] == [n for _, n in cols][:used] and len(rows) == used
    assert {n for _, n in rows} >= set(WORDS) and [n for _, n in cols][-1] == "–"
    assert [v for v, _ in cols] == [j + 0.5 for j in range(used + 1)]  # one name at every column

    panel.shuffle.setChecked(False)
    assert run_job(panel, panel.evaluate).completed, panel.error.text()
    assert [r.path for r in panel.report.results] == [str(p) for p, _ in clips]
    assert "list order" in panel.detail_label.text()


def test_many_classes_are_all_named(qtbot):
    """31 classes: every row named (a smaller font), the column names stand upright, none dropped."""
    import numpy as np

    from kwsgui.charts import HeatMap

    names = [f"class_{i:02d}_name" for i in range(31)]
    h = HeatMap()
    qtbot.addWidget(h)
    h.resize(700, 600)
    m = np.eye(31, 32, dtype=int) * 5
    h.set_matrix(m, names, names + ["–"])
    h.show()
    qtbot.waitExposed(h)
    qtbot.waitUntil(lambda: h.getAxis("bottom").upright and h.getAxis("bottom").height() > 60)  # room for a name
    assert [n for _, n in h.getAxis("left").names] == names
    assert [n for _, n in h.getAxis("bottom").names] == names + ["–"]
