"""Collect panel through its real widgets: Record from the microphone (PyAudio on a file-backed ALSA
device, in a fresh interpreter), import of a long recording, cards with thumbnails, play, delete,
relabel, counts per label, lists kept in step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav, to_int16, write_wav
from core.data.lists import ListsConfig, make_lists, write_lists
from core.data.segment import Framing, segment_samples
from core.evaluate.stream import mix_at_snr

SR = 16000
JOB_MS = 60_000
WORDS = ["bed/62581901_nohash_0.wav", "cat/26e573a9_nohash_0.wav", "seven/37e8db82_nohash_1.wav",
         "bed/93ec8b84_nohash_0.wav", "cat/31583d30_nohash_0.wav"]


def session(data_dir, seed: int = 0) -> np.ndarray:
    """A take of someone saying words with pauses, pink noise under it at 20 dB SNR, 16-bit exact."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(SR // 2, np.float32)]
    root = data_dir / "speech_commands_v0.01_sample"
    for name in WORDS:
        x, _ = read_wav(root / name, SR)
        parts += [x / max(1e-3, np.abs(x).max()) * 0.5, np.zeros(int(rng.uniform(0.3, 0.8) * SR), np.float32)]
    s = np.concatenate(parts)
    noise, _ = read_wav(data_dir / "background_noise" / "pink_noise.wav", SR)
    y = mix_at_snr(s, noise[: len(s)], 20.0, np.mean(np.square(s[np.abs(s) > 0.02])))
    return to_int16(y).astype(np.float32) / 32768  # what a 16-bit microphone or wav delivers


@pytest.fixture
def panel(qtbot, settings):
    from kwsgui.collect_panel import CollectPanel

    p = CollectPanel(settings=settings)
    qtbot.addWidget(p)
    p.resize(1000, 700)
    p.show()
    yield p
    p.shutdown()


def test_record_from_the_microphone_cuts_each_word_and_plays_it(tmp_path, data_dir, alsa_env):
    pytest.importorskip("pyaudio", reason="PyAudio is not installed")
    x = session(data_dir)
    raw, played = tmp_path / "take.raw", tmp_path / "played.raw"
    to_int16(x).tofile(raw)
    folder = tmp_path / "words"
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("collect_app.py")), str(folder), "hello",
                           str(len(x) / SR), str(tmp_path / "s.ini")],
                          env=alsa_env(infile=raw, outfile=played), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = segment_samples(x, Framing())  # the same samples, segmented offline in one piece
    assert len(expected) == len(WORDS)
    cards = report["cards"][::-1]  # newest first on screen
    assert [Path(p).name for p, _, _ in cards] == [f"mic_nohash_{i}.wav" for i in range(len(WORDS))]
    assert all(label == "hello" for _, label, _ in cards) and report["counts"] == f"Clips per label: hello {len(WORDS)}"
    for (path, _, _), u in zip(cards, expected):
        y, _ = read_wav(path)
        np.testing.assert_array_equal(to_int16(y), to_int16(u.samples))  # bit-exact through PortAudio
    assert report["levels"] > 0 and report["error"] == "" and report["play_error"] is None
    assert report["played"] == cards[0][0]
    out = np.fromfile(played, "<i2")
    np.testing.assert_array_equal(out[:SR], to_int16(expected[0].samples))  # what Play sent to the speaker


def test_import_delete_relabel_and_lists(qtbot, panel, tmp_path, data_dir):
    x = session(data_dir, seed=1)
    long = tmp_path / "long take.wav"
    write_wav(long, x, SR)
    folder = tmp_path / "words"
    (folder / "other").mkdir(parents=True)
    write_wav(folder / "other" / "a_nohash_0.wav", x[:SR], SR)
    panel.folder.set_path(folder)
    panel.label_edit.setText("hello")
    panel.speaker_edit.setText("")  # the recording's name becomes the speaker
    with qtbot.waitSignal(panel.job_finished, timeout=JOB_MS) as blocker:
        assert panel.import_file(long), panel.error.text()
    assert blocker.args[0].completed, panel.error.text()
    n = len(WORDS)
    files = sorted((folder / "hello").iterdir())
    assert [p.name for p in files] == sorted(f"long-take_nohash_{i}.wav" for i in range(n))
    assert len(panel.model.cards) == n and panel.counts_label.text() == f"Clips per label: hello {n} · other 1"
    qtbot.waitUntil(lambda: all(panel.model.has_thumbnail(c.path) for c in panel.model.cards), timeout=10_000)
    assert panel.loader.made >= n  # made off the GUI thread, when the cards were painted
    # lists written into the folder (kws lists --in-place) follow deletes and relabels
    write_lists(make_lists([folder], ListsConfig(validation_percent=0, testing_percent=0)), folder)
    first, second = panel.model.cards[0].path, panel.model.cards[1].path
    panel.view.select_path(first)
    panel.delete_button.click()
    assert not Path(first).exists() and len(panel.model.cards) == n - 1
    panel.view.select_path(second)
    panel.relabel_edit.setText("world")
    panel.relabel_button.click()
    moved = folder / "world" / Path(second).name
    assert moved.is_file() and not Path(second).exists()
    assert panel.model.cards[0].label == "world" and panel.model.cards[0].path == str(moved)
    assert panel.counts_label.text() == f"Clips per label: hello {n - 2} · other 1 · world 1"
    listed = (folder / "training_list.txt").read_text().split()
    assert f"world/{moved.name}" in listed and f"hello/{Path(first).name}" not in listed
    assert f"hello/{Path(second).name}" not in listed and len(listed) == n
    assert (folder / "categories.txt").read_text().split() == ["hello", "other", "world"]
    # a bad label is refused before anything is recorded
    panel.label_edit.setText("../up")
    assert not panel.record() and "Label" in panel.error.text()
