"""Dataset panel end to end (offscreen): lists from a small folder of real clips (plus a broken
wav), the per-class chart, featurized datasets through the real core, skipped files, Stop."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.dataset import load_dataset

WORDS = ("seven", "yes", "no")
JOB_MS = 60_000


@pytest.fixture
def audio_dir(tmp_path, data_dir):
    """3 words x 10 real Speech Commands clips (symlinked) and one broken wav."""
    root = tmp_path / "audio"
    for w in WORDS:
        (root / w).mkdir(parents=True)
        for f in sorted((data_dir / "speech_commands_v0.01_sample" / w).glob("*.wav")):
            (root / w / f.name).symlink_to(f)
    (root / "yes" / "broken_nohash_0.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    return root


@pytest.fixture
def panel(qtbot, settings):
    from kwsgui.dataset_panel import DatasetPanel

    p = DatasetPanel(settings=settings)
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    yield p
    p.shutdown()


def run(qtbot, panel, start):
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert start(), panel.error.text()
    return blocker.args[0]


def test_lists_then_datasets(qtbot, panel, audio_dir, tmp_path):
    panel.add_folder(audio_dir)
    panel.lists_out.set_path(tmp_path / "lists")
    panel.val_pct.setValue(20.0)
    panel.test_pct.setValue(20.0)
    summary = run(qtbot, panel, panel.make_lists)
    assert summary.completed, panel.error.text()
    r = panel.lists_report
    assert r.categories == tuple(sorted(WORDS))
    files = sum(panel.chart.total(s) for s in ("training", "validation", "testing"))
    assert files == 31 and panel.chart.total("training") > 0
    assert (tmp_path / "lists" / "training_list.txt").is_file()
    assert panel.dataset_out.text() == str(tmp_path / "lists")  # filled in for the next step

    out = tmp_path / "datasets"
    panel.dataset_out.set_path(out)
    built = []
    panel.dataset_built.connect(built.append)
    summary = run(qtbot, panel, panel.build)
    assert summary.completed, panel.error.text()
    assert built == [str(out)]
    train = load_dataset(out / "training.npz")
    assert train.features.shape[1:] == (40, 80) and np.isfinite(train.features).all()
    rows = sum(sum(c.values()) for c in panel.build_report.counts.values())
    assert rows == 30  # one row per 1 s clip; the broken file gave none
    assert panel.skipped.count() == 1 and "broken_nohash_0.wav" in panel.skipped.item(0).text()
    assert "1 files skipped" in panel.summary.text()
    assert panel.job_bar.bar.value() == 1000 and panel.build_button.isEnabled()


def test_build_with_two_worker_processes(qtbot, panel, audio_dir, tmp_path):
    """The build runs in a child process that starts its own pool of 2 workers (a daemonic child
    could not: "daemonic processes are not allowed to have children"); same rows as one worker."""
    panel.add_folder(audio_dir)
    panel.lists_out.set_path(tmp_path / "lists")
    assert run(qtbot, panel, panel.make_lists).completed, panel.error.text()
    rows = {}
    for jobs in (2, 1):
        panel.jobs.setValue(jobs)
        out = tmp_path / f"jobs{jobs}"
        panel.dataset_out.set_path(out)
        summary = run(qtbot, panel, panel.build)
        assert summary.completed, panel.error.text()
        assert panel.error.isHidden() and panel.skipped.count() == 1
        rows[jobs] = load_dataset(out / "training.npz")
    assert len(rows[2]) > 0
    np.testing.assert_array_equal(rows[2].features, rows[1].features)  # same seed, same rows, any jobs
    np.testing.assert_array_equal(rows[2].labels, rows[1].labels)


def test_stop_writes_nothing_and_errors_show_once(qtbot, panel, audio_dir, tmp_path):
    panel.add_folder(audio_dir)
    panel.lists_out.set_path(tmp_path / "lists")
    assert run(qtbot, panel, panel.make_lists).completed
    out = tmp_path / "stopped"
    panel.dataset_out.set_path(out)

    def start_and_stop():
        ok = panel.build()
        panel.stop_job()
        return ok

    summary = run(qtbot, panel, start_and_stop)
    assert summary.cancelled and not summary.completed
    assert not (out / "training.npz").exists() and panel.error.isHidden()

    failures = []
    panel.job_failed.connect(failures.append)
    panel.bad_list.set_path(tmp_path / "no_such_bad_list.txt")
    summary = run(qtbot, panel, panel.make_lists)
    assert summary.error and "no_such_bad_list.txt" in summary.error
    assert failures == [summary.error] and panel.error.isVisible()
    assert panel.lists_button.isEnabled()


def test_synthetic_keywords_from_chosen_engines_become_an_audio_folder(qtbot, panel, tmp_path, monkeypatch):
    """The engines are offered (all installed here: scripts/sysdeps.sh, pyproject.toml); the job's
    progress names what it does (finding engines, then synthesizing), and the clips form a folder."""
    from core.audio.wav import read_wav

    assert list(panel.engine_boxes) == ["espeak", "flite", "festival", "piper"]
    assert all(b.isEnabled() for b in panel.engine_boxes.values())
    for name, box in panel.engine_boxes.items():
        box.setChecked(name in ("flite", "festival"))
    texts = []
    show = panel.job_bar.update_progress
    monkeypatch.setattr(panel.job_bar, "update_progress", lambda p: (texts.append(p.text), show(p)))
    out = tmp_path / "synth"
    panel.words.setText("seven")
    panel.per_word.setValue(2)
    panel.synth_out.set_path(out)
    summary = run(qtbot, panel, panel.synthesize)
    assert summary.completed, panel.error.text()
    wavs = sorted((out / "seven").glob("*_nohash_*.wav"))
    assert [w.name.split("-")[0] for w in wavs] == ["festival", "flite"]  # one each: spread over the engines
    assert panel.summary.text().startswith(f"synthesized 2 clips into {out}\nper clip: flite ")
    assert "finding speech engines and voices" in texts and texts[-1] == "synthesizing with flite, festival"
    x, rate = read_wav(wavs[0])
    assert rate == 16000 and len(x) == 16000 and np.abs(x).max() > 0.1  # 1 s of speech, centred
    assert str(out) in panel.folder_list()  # ready for Make lists


def test_a_missing_engine_is_offered_disabled_with_what_to_install(qtbot, settings, monkeypatch):
    import core.data.speech.process as process
    from kwsgui.dataset_panel import DatasetPanel

    real = process.shutil.which
    monkeypatch.setattr(process.shutil, "which", lambda name: None if name == "flite" else real(name))
    p = DatasetPanel(settings=settings)
    qtbot.addWidget(p)
    box = p.engine_boxes["flite"]
    assert not box.isEnabled() and not box.isChecked()
    assert box.toolTip() == "missing: flite not found (install: apt-get install -y flite)"
    assert p.engine_boxes["espeak"].isEnabled() and "flite" not in p.chosen_engines()
    for b in p.engine_boxes.values():
        b.setChecked(False)
    p.synth_out.set_path(settings.fileName() + ".synth")
    assert not p.synthesize() and "choose at least one speech engine" in p.error.text()
    p.shutdown()
