"""The live view end to end (offscreen): real models, real clips, the real worker thread."""

from __future__ import annotations

import re

import numpy as np
import pytest
from display_check import assert_display_matches

from core.audio.wav import read_wav
from core.features.featurizer import featurize
from core.models import DEFAULT_CATEGORIES, DEFAULT_CLASSIFIER, DEFAULT_FEATURIZER, DEMO_WAV
from kwsgui.model_set import BUILTIN
from kwsgui.plots import to_display

STREAM_TIMEOUT_MS = 30_000


def detections(view) -> list[str]:
    """Detected labels, in order, from the log lines `  T.TT s  DETECTED label NN%`."""
    pat = re.compile(r"^\s*\d+\.\d\d s  DETECTED (\S+) \d{1,3}%$")
    return [m.group(1) for line in view.log.toPlainText().splitlines() if (m := pat.match(line))]


def play_to_end(qtbot, view, wav, **kw):
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS) as blocker:
        assert view.play(wav, realtime=False, play_audio=False, **kw)
    return blocker.args[0]


def load_devkit(view, devkit) -> None:
    assert view.load_featurizer(devkit["featurizer"]), view.error_label.text()
    assert view.load_classifier(devkit["classifier"]), view.error_label.text()
    assert view.load_categories(devkit["categories"]), view.error_label.text()


def test_devkit_model_detects_seven(qtbot, view, devkit, data_dir):
    load_devkit(view, devkit)
    assert view.bars_box.isVisible()
    summary = play_to_end(qtbot, view, data_dir / "ell_examples" / "seven.wav")

    assert summary.error is None and not summary.cancelled
    assert summary.frames == 31  # 1 s at 16 kHz, hop 512: whole hops only
    img = view.spectrogram.image_item.image
    assert view.spectrogram.columns == 31
    assert img.shape == (31, 80) and img.dtype == np.float32
    assert np.isfinite(img).all() and img.std() > 1.0  # a real picture, not a constant
    assert "seven" in detections(view)
    assert view.bars.labels[20] == "seven" and len(view.bars.labels) == 31
    assert view.error_label.isHidden()
    assert "ms per frame" in view.timing_label.text()


def test_spectrogram_only_matches_offline_featurizer(qtbot, view):
    """Built-in featurizer, no classifier: the scrolled image holds exactly the newest frames."""
    assert view.models.featurizer_path == BUILTIN and view.models.classifier is None
    assert not view.bars_box.isVisible()
    summary = play_to_end(qtbot, view, DEMO_WAV)

    x, _ = read_wav(DEMO_WAV, 16000)
    expected = to_display(featurize(view.models.featurizer, x))  # (frames, 80), one batch, no streaming
    cap = view.spectrogram.ring.capacity
    assert summary.frames == len(expected) > cap  # the ring has wrapped
    img = view.spectrogram.image_item.image
    assert img.shape == (cap, 80)
    assert_display_matches(img, view.models.featurizer, x)  # the newest frames, within float32 error
    assert detections(view) == []


def test_threshold_and_smoothing_reach_the_worker(qtbot, view, devkit, data_dir):
    """"seven" stays above 0.9 for 5 frames: detected without smoothing, not when averaged
    over 8 frames (mean ~0.76)."""
    load_devkit(view, devkit)
    seven = data_dir / "ell_examples" / "seven.wav"
    view.threshold_spin.setValue(0.9)
    play_to_end(qtbot, view, seven)
    assert detections(view) == ["seven"]
    view.log.clear()
    view.smoothing_spin.setValue(8)
    play_to_end(qtbot, view, seven)
    assert detections(view) == []


@pytest.mark.parametrize("name, content", [("broken.kwm", b"not a model at all"),
                                           ("broken.ell", b'{"_type": "Map", "model": {"nodes": [')])
def test_broken_model_shows_error_and_keeps_models(qtbot, view, tmp_path, name, content):
    bad = tmp_path / name
    bad.write_bytes(content)
    before = view.models
    messages = []
    view.message.connect(messages.append)

    assert not view.load_featurizer(bad)
    assert view.error_label.isVisible() and name in view.error_label.text()
    assert not view.load_classifier(bad)
    assert view.models is before
    assert sum(name in m for m in messages) == 2  # once per attempt
    # the panel still works
    play_to_end(qtbot, view, DEMO_WAV)
    assert view.error_label.isHidden() and view.spectrogram.columns > 0


def test_unreadable_wav_fails_once_in_the_panel(qtbot, view, tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    failures = []
    view.stream_failed.connect(failures.append)
    summary = play_to_end(qtbot, view, bad)
    assert summary.error is not None and "noise.wav" in summary.error
    assert failures == [summary.error]
    assert "noise.wav" in view.error_label.text() and view.error_label.isVisible()
    assert not view.is_running and view.play_button.isEnabled()


def test_missing_wav_is_refused(view, tmp_path):
    assert not view.play(tmp_path / "nope.wav", play_audio=False)
    assert "nope.wav" in view.error_label.text() and not view.is_running


def test_stop_ends_a_realtime_stream(qtbot, view):
    assert view.play(DEMO_WAV, realtime=True, play_audio=False)
    qtbot.waitUntil(lambda: view.spectrogram.columns > 0, timeout=5000)
    with qtbot.waitSignal(view.stream_finished, timeout=5000) as blocker:
        view.stop()
    summary = blocker.args[0]
    assert summary.cancelled and 0 < summary.frames < 200  # 263 frames would take 8.4 s
    assert not view.is_running


def test_closing_the_window_joins_the_worker(qtbot, settings):
    from kwsgui.app import MainWindow

    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    view = win.live_view
    assert view.play(DEMO_WAV, realtime=True, play_audio=False)
    stream = view._stream
    qtbot.waitUntil(lambda: view.spectrogram.columns > 0, timeout=5000)
    win.close()
    assert not stream.is_running() and not view.is_running
    assert settings.value("paths/wav") == str(DEMO_WAV.resolve())


def test_classifier_offered_as_featurizer_is_refused(view, devkit):
    assert not view.load_featurizer(devkit["classifier"])
    assert "classifier model, not a featurizer" in view.error_label.text()
    assert view.models.featurizer_path == BUILTIN


def test_sound_without_an_output_device_is_only_a_status_message(qtbot, view):
    speaker = pytest.importorskip("core.audio.speaker", reason="core.audio.speaker is not in this build")
    from core.errors import KwsError

    try:
        speaker.Speaker(16000).close()
    except KwsError:
        pass
    else:
        pytest.skip("this machine has an audio output device")
    messages = []
    view.message.connect(messages.append)
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS) as blocker:
        assert view.play(DEMO_WAV, realtime=False, play_audio=True)
    summary = blocker.args[0]
    assert summary.error is None and summary.frames > 0
    assert any(m.startswith("no audio output") for m in messages), messages
    assert view.status_label.text().startswith("no audio output")
    assert view.status_label.toolTip().startswith("no audio output") and len(view.status_label.text()) <= 40
    assert view.error_label.isHidden()


def test_model_actions_from_the_menu(view, devkit):
    load_devkit(view, devkit)
    view.actions_["no_classifier"].trigger()
    assert view.models.classifier is None and not view.bars_box.isVisible()
    assert view.models.featurizer_path == str(devkit["featurizer"])
    view.actions_["builtin"].trigger()
    assert view.models.featurizer_path == BUILTIN
    assert view.settings.value("paths/featurizer") == "" and view.settings.value("paths/classifier") == ""


def test_microphone_without_a_device_fails_in_the_panel(qtbot, view):
    mic = pytest.importorskip("core.audio.microphone", reason="core.audio.microphone is not in this build")
    from core.errors import KwsError

    try:
        found = mic.default_input_device()
    except KwsError:
        found = None
    if found is not None:
        pytest.skip(f"this machine has a microphone ({found.name})")
    view.source_combo.setCurrentIndex(view.source_combo.findData("mic"))
    note = view.source.mic_note
    assert note.text().startswith("No microphone") and note.isVisible()  # said in the panel at once
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS) as blocker:
        assert view.play(play_audio=False)
    assert blocker.args[0].error and "microphone" in view.error_label.text()
    assert not view.is_running
    view.source.set_kind("wav")  # the rest keeps working
    summary = play_to_end(qtbot, view, DEMO_WAV)
    assert summary.error is None and view.spectrogram.columns > 0 and not note.isVisible()


def test_vad_light_lines_level_and_backend(qtbot, view, devkit, data_dir):
    """The DevKit classifier has a VAD node: its 0/1 per frame reaches the panel, with the level
    meter, the top-class lines (seven on top) and the backend that ran."""
    load_devkit(view, devkit)
    assert view.vad_label.text() == "VAD"
    summary = play_to_end(qtbot, view, data_dir / "ell_examples" / "seven.wav")
    assert summary.error is None
    assert 0 < view.stats["vad_frames"] < 31  # speech in the middle of the clip, silence around
    assert -40.0 < view.stats["max_level_db"] <= 0.0 and view.stats["clipped"] == 0
    assert view.lines.shown and view.bars.labels[view.lines.shown[0]] == "seven"
    x, y = view.lines.curves[0].getData()
    assert len(x) == 31 and y.max() > 0.9
    assert view.backend_label.text() in ("backend: compiled", "backend: interpreter")


def test_interpreter_backend_gives_the_same_detections(qtbot, view, devkit, data_dir):
    load_devkit(view, devkit)
    view.backend_combo.setCurrentIndex(view.backend_combo.findData("interpreter"))
    play_to_end(qtbot, view, data_dir / "ell_examples" / "seven.wav")
    assert view.backend_label.text() == "backend: interpreter"
    assert detections(view) == ["seven"]


def test_ignored_labels_are_not_detected(qtbot, view, devkit, data_dir):
    load_devkit(view, devkit)
    view.set_ignore("seven, background_noise")
    play_to_end(qtbot, view, data_dir / "ell_examples" / "seven.wav")
    assert "seven" not in detections(view)
    assert all(view.bars.labels[i] not in ("seven", "background_noise") for i in view.lines.shown)
    view.set_ignore("no_such_label")
    assert "no_such_label" in view.error_label.text()


def load_bundled(view) -> None:
    for load, path in ((view.load_featurizer, DEFAULT_FEATURIZER), (view.load_classifier, DEFAULT_CLASSIFIER),
                       (view.load_categories, DEFAULT_CATEGORIES)):
        assert load(path), view.error_label.text()


def test_classes_that_are_no_keyword_are_ignored_until_the_user_says_otherwise(qtbot, view, devkit):
    """A fresh user: the model's background class is not reported (the bundled model says when noise
    follows a word: that is no detection) and is filled into Ignore, for each model loaded; once the
    user sets the field, theirs is kept and saved."""
    load_bundled(view)
    assert view.ignore_edit.text() == "background_noise" and view.controls.ignore == ("background_noise",)
    play_to_end(qtbot, view, DEMO_WAV)
    heard = detections(view)
    assert "seven" in heard and "background_noise" not in heard
    load_devkit(view, devkit)
    assert view.ignore_edit.text() == "background_noise"
    view.set_ignore("")
    assert view.controls.ignore == () and view.settings.value("live/ignore") == ""
    load_bundled(view)
    assert view.ignore_edit.text() == ""
    view.log.clear()
    play_to_end(qtbot, view, DEMO_WAV)
    assert "background_noise" in detections(view)


def test_folder_source_previous_and_next(qtbot, view, devkit, data_dir):
    load_devkit(view, devkit)
    assert view.source.set_folder(data_dir / "ell_examples")
    names = [p.name for p in view.source.files]
    assert names == ["bed.wav", "seven.wav", "seven_tutorial.wav"]
    assert view.source.prev_button.isEnabled() and view.source.next_button.isEnabled()
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS):
        view.play_audio_check.setChecked(False)
        view.source.step(1)  # -> seven.wav, played at once
    assert view.source.file_label.text() == "2/3  seven.wav"
    assert "seven" in detections(view)
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS):
        view.source.step(-1)  # -> bed.wav
    assert detections(view)[-1] == "bed"
    assert view.settings.value("paths/folder") == str((data_dir / "ell_examples").resolve())


def test_file_backed_microphone_records_and_detects(devkit, data_dir, alsa_env, tmp_path):
    """The real PortAudio capture path in a fresh process (ALSA reads a real clip's PCM): the panel
    lists the device, detects seven, lights the VAD and writes the recording bit-exactly."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from core.audio.wav import read_wav, to_int16

    x, _ = read_wav(data_dir / "ell_examples" / "seven.wav")
    raw = tmp_path / "seven.raw"
    to_int16(x).tofile(raw)
    out_wav = tmp_path / "rec" / "take.wav"
    script = Path(__file__).with_name("mic_app.py")
    proc = subprocess.run([sys.executable, str(script), *(str(devkit[k]) for k in ("featurizer", "classifier",
                           "categories")), str(len(x) / 16000), str(out_wav), str(tmp_path / "s.ini")],
                          env=alsa_env(infile=raw), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["devices"]) >= 2 and report["note"] == ""  # "default" plus the ALSA device(s)
    assert report["detections"] == ["seven"] and report["frames"] == 31
    assert report["vad_frames"] > 0 and report["max_level_db"] > -40
    assert report["recorded"] == str(out_wav)
    y, rate = read_wav(out_wav)
    assert rate == 16000 and np.array_equal(to_int16(y), to_int16(x[: 31 * 512]))
    assert [p.name for p in out_wav.parent.iterdir()] == ["take.wav"]  # no temporary file left


def test_without_a_microphone_record_is_off_and_its_error_goes_with_the_source(qtbot, view, monkeypatch, tmp_path):
    """No microphone: Play and Record are disabled in microphone mode (Record asks for no file
    name), an error about the microphone is cleared by switching to a file; an error about the
    models stays."""
    mic = pytest.importorskip("core.audio.microphone", reason="core.audio.microphone is not in this build")
    from PyQt5.QtWidgets import QFileDialog

    from core.errors import KwsError

    try:
        found = mic.default_input_device()
    except KwsError:
        found = None
    if found is not None:
        pytest.skip(f"this machine has a microphone ({found.name})")
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: asked.append(a) or ("", ""))
    assert not view.record_button.isEnabled()  # a file source: nothing to record
    view.source.set_kind("mic")
    assert view.source.mic_found is False
    assert not view.record_button.isEnabled() and not view.play_button.isEnabled()
    assert "No microphone" in view.record_button.toolTip()
    assert not view.choose_record() and asked == [] and "no microphone" in view.error_label.text()
    with qtbot.waitSignal(view.stream_finished, timeout=STREAM_TIMEOUT_MS):
        assert view.play(play_audio=False)  # called anyway (a script): the stream fails in the panel
    assert "microphone" in view.error_label.text() and view.error_label.isVisible()
    view.source.set_kind("wav")
    assert view.error_label.isHidden() and view.play_button.isEnabled()  # no stale microphone banner
    assert view.play_button.toolTip() == "Run the source through the models"
    assert not view.load_classifier(tmp_path / "nope.kwm")  # an error about the models
    view.source.set_kind("folder")
    assert "nope.kwm" in view.error_label.text() and view.error_label.isVisible()


def test_folder_buttons_do_not_move_with_the_file_name(qtbot, view, tmp_path):
    """Previous / next stay where they are whatever the length of the file name shown beside them."""
    from core.audio.wav import write_wav

    for name in ("a.wav", "b" + "_very_long_file_name" * 8 + ".wav"):
        write_wav(tmp_path / name, np.zeros(1600, np.float32), 16000)
    assert view.source.set_folder(tmp_path)

    def spot():
        qtbot.wait(20)
        src = view.source
        return src.next_button.x(), src.prev_button.x(), src.path_edit.width(), src.height()

    short = spot()
    assert view.source.file_label.text() == "1/2  a.wav"
    view.source.step(1)  # the view plays the file it picked
    view.shutdown_stream()
    assert "2/2  b_very_long" in view.source.file_label.toolTip() and spot() == short
    label = view.source.file_label
    assert label.elided_text() != label.text() and label.isVisible()  # elided, not widened
    assert 0 < label.geometry().left() and label.geometry().right() < view.source.width()  # inside the bar
