"""The live view plays FLAC, OGG/Vorbis, Opus and MP3 files (converted by sox / opusenc at test time)
and lists them in folder mode; the file dialogs offer them."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
from display_check import assert_display_matches

from core.audio.wav import read_wav
from kwsgui.live_source import WAV_FILTER

STREAM_TIMEOUT_MS = 30_000


def convert(src, dst):
    cmd = ["opusenc", "--quiet", str(src), str(dst)] if dst.suffix == ".opus" else ["sox", str(src), str(dst)]
    assert shutil.which(cmd[0]), f"{cmd[0]} is missing: run scripts/sysdeps.sh"
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return dst


def play_to_end(qtbot, view, path):
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS) as blocker:
        assert view.play(path, realtime=False, play_audio=False), view.error_label.text()
    return blocker.args[0]


def test_live_view_plays_a_flac_exactly_like_its_wav(qtbot, devkit_view, data_dir, tmp_path):
    view = devkit_view
    wav = data_dir / "ell_examples" / "seven.wav"
    flac = convert(wav, tmp_path / "seven.flac")
    play_to_end(qtbot, view, wav)
    from_wav = np.array(view.spectrogram.image_item.image)
    summary = play_to_end(qtbot, view, flac)
    assert summary.error is None and summary.frames == 31
    assert view.error_label.isHidden()
    assert "DETECTED seven" in view.log.toPlainText()
    # Lossless: the same samples through the same path give the same picture, bit for bit.
    img = view.spectrogram.image_item.image
    assert img.shape == from_wav.shape == (31, 80)
    np.testing.assert_array_equal(img, from_wav)
    # and the one-batch featurizer within the streaming-vs-batch float32 tolerance test_live_view uses
    assert_display_matches(img, view.models.featurizer, read_wav(wav)[0])


def test_folder_mode_lists_every_format_and_plays_an_mp3(qtbot, devkit_view, data_dir, tmp_path):
    view = devkit_view
    for ext in ("wav", "flac", "ogg", "opus", "mp3"):
        convert(data_dir / "ell_examples" / "seven.wav", tmp_path / f"seven.{ext}")
    (tmp_path / "notes.txt").write_text("not audio")
    assert view.source.set_folder(tmp_path)
    assert [p.name for p in view.source.files] == [f"seven.{e}" for e in ("flac", "mp3", "ogg", "opus", "wav")]
    summary = play_to_end(qtbot, view, tmp_path / "seven.mp3")
    assert summary.error is None and summary.frames >= 31  # the decoder delay adds a few frames
    assert "DETECTED seven" in view.log.toPlainText()
    for ext in ("wav", "flac", "ogg", "opus", "mp3"):
        assert f"*.{ext}" in WAV_FILTER
