"""The `kws` command line, run as a user runs it (a subprocess)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def kws(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def devkit_args(shared_data):
    d = shared_data / "ell_devkit_model"
    return ["--featurizer", d / "featurizer.ell", "--classifier", d / "classifier.ell",
            "--categories", d / "categories.txt"]


@pytest.mark.parametrize("word, index", [("seven", 20), ("bed", 1)])
def test_run_detects_word_in_wav(devkit_args, shared_data, word, index):
    out = kws("run", *devkit_args, "--wav-file", shared_data / "ell_examples" / f"{word}.wav")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    detections = [ln for ln in lines if ln.startswith("<<< DETECTED")]
    assert detections and detections[0].startswith(f"<<< DETECTED ({index}) ") and detections[0].endswith(
        f"% {word} >>>")
    assert lines[-1].startswith("Average processing time: ") and lines[-1].endswith(" ms per frame")
    assert 0 < float(lines[-1].split(":")[1].split()[0]) < 50  # ms


def test_run_reports_words_not_background_unless_asked(shared_data):
    """`kws run WAV` (positional) with the bundled model: its background class is not a detection
    (the live view's rule, core.evaluate.calibrate.default_ignore) until --ignore says otherwise."""
    clip = shared_data / "speech_commands_v0.01_sample" / "cat" / "26e573a9_nohash_0.wav"
    quiet, everything = kws("run", clip), kws("run", "--wav-file", clip, "--ignore", "")
    assert quiet.returncode == 0 and everything.returncode == 0, quiet.stderr + everything.stderr
    said = lambda out: [ln.split("% ")[1].rstrip(" >") for ln in out.stdout.splitlines()  # noqa: E731
                        if ln.startswith("<<< DETECTED")]
    assert said(quiet) == ["cat"]
    assert "background_noise" in said(everything) and "cat" in said(everything)


def test_run_several_wavs_in_turn(shared_data, tmp_path):
    """`kws run A.wav B.wav ...`: each in turn (as --wav-dir does), an unreadable one skipped and named."""
    a = shared_data / "ell_examples" / "seven.wav"
    b = shared_data / "speech_commands_v0.01_sample" / "cat" / "26e573a9_nohash_0.wav"
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    out = kws("run", a, bad, b, "--reset")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == str(a) and str(b) in out.stdout
    assert "% seven >>>" in out.stdout and "% cat >>>" in out.stdout
    assert "2 files, " in out.stdout and "1 unreadable files skipped" in out.stdout and str(bad) in out.stderr
    none = kws("run", bad, bad)
    assert none.returncode != 0 and "none of the 2 wav files could be read" in none.stderr


def test_run_wav_dir_with_reset(devkit_args, shared_data):
    out = kws("run", *devkit_args, "--wav-dir", shared_data / "speech_commands_v0.01_sample" / "seven", "--reset",
              "--threshold", "0.5")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.count(".wav") == 10
    assert text.count("% seven >>>") >= 7


def test_run_without_models_says_what_is_needed(tmp_path, monkeypatch):
    import argparse

    from core import models
    from core.commands.common import resolve_models
    from core.errors import KwsError

    monkeypatch.setattr(models, "DEFAULT_FEATURIZER", tmp_path / "none.kwm")
    args = argparse.Namespace(featurizer=None, classifier=None, categories=None)
    with pytest.raises(KwsError, match="--featurizer F --classifier C --categories T"):
        resolve_models(args)


def test_run_uses_the_bundled_default_models():
    from core import models

    assert models.default_models_available(), "assets/ ships featurizer.kwm and classifier.kwm"
    out = kws("run", "--wav-file", models.DEMO_WAV)
    assert out.returncode == 0, out.stderr
    assert "% seven >>>" in out.stdout and out.stdout.count("<<< DETECTED") >= 3


def test_run_bad_wav_is_a_clear_error(devkit_args, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    out = kws("run", *devkit_args, "--wav-file", bad)
    assert out.returncode == 2 and str(bad) in out.stderr and "Traceback" not in out.stderr


def test_featurizer_command_writes_equivalent_model(tmp_path):
    from core.features.featurizer import FeaturizerConfig, build_featurizer, featurize
    from core.graph import modelfile

    path = tmp_path / "feat.kwm"
    out = kws("featurizer", "-o", path, "--hop-length", "160", "--filterbank-size", "40", "--iir", "--dct")
    assert out.returncode == 0, out.stderr
    g = modelfile.load(path)
    cfg = FeaturizerConfig(hop_length=160, n_filters=40, preemphasis=0.97, dct=True)
    assert g.metadata["featurizer"] == cfg.to_dict()
    x = np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1
    assert np.array_equal(featurize(g, x), featurize(build_featurizer(cfg), x))


def test_featurizer_command_rejects_bad_value(tmp_path):
    out = kws("featurizer", "-o", tmp_path / "f.kwm", "--nfft", "500")
    assert out.returncode == 2 and "n_fft" in out.stderr and not (tmp_path / "f.kwm").exists()


def test_import_ell_writes_kwm_and_summary(shared_data, tmp_path):
    out_path = tmp_path / "clf.kwm"
    d = shared_data / "ell_devkit_model"
    out = kws("import", d / "classifier.ell", "-o", out_path, "--categories", d / "categories.txt", "--summary")
    assert out.returncode == 0, out.stderr
    assert "gru" in out.stdout and "multiply-adds per frame" in out.stdout
    from core.graph import modelfile

    g = modelfile.load(out_path)
    assert len(g.categories) == 31 and g.categories[20] == "seven"
    # the imported model runs directly, its categories come from inside it
    run = kws("run", "--featurizer", d / "featurizer.ell", "--classifier", out_path,
              "--wav-file", shared_data / "ell_examples" / "seven.wav")
    assert run.returncode == 0 and "% seven >>>" in run.stdout, run.stderr


def test_run_from_file_backed_microphone_detects_seven(devkit_args, shared_data, alsa_env, tmp_path):
    """The real PyAudio/PortAudio capture path: ALSA's default device reads a real clip's PCM."""
    from core.audio.wav import read_wav, to_int16

    raw = tmp_path / "seven.raw"
    to_int16(read_wav(shared_data / "ell_examples" / "seven.wav")[0]).tofile(raw)
    out = subprocess.run([sys.executable, "-m", "core", "run", *map(str, devkit_args), "--duration", "1.0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=alsa_env(infile=raw))
    assert out.returncode == 0, out.stderr
    assert "<<< DETECTED (20)" in out.stdout and "% seven >>>" in out.stdout
    assert out.stdout.splitlines()[-1].startswith("Average processing time: ")


def test_run_without_microphone_is_a_clear_error(devkit_args, alsa_env):
    out = subprocess.run([sys.executable, "-m", "core", "run", *map(str, devkit_args), "--duration", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=alsa_env())
    assert out.returncode == 2 and "no microphone found" in out.stderr and "Traceback" not in out.stderr


def _silent_wav(path, seconds=1.0):
    from core.audio.wav import write_wav

    write_wav(path, np.zeros(int(16000 * seconds), np.float32), 16000)


def test_run_wav_dir_skips_unreadable_files_and_reports_quiet_ones(devkit_args, shared_data, tmp_path):
    """A broken wav first, a missing-rate one in the middle: both skipped and named at the end; the
    folder goes on; a file without detections says so."""
    import shutil

    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copyfile(shared_data / "ell_examples" / "seven.wav", d / "b_seven.wav")
    (d / "a_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    (d / "c_empty.wav").write_bytes(b"")
    _silent_wav(d / "d_silence.wav")
    out = kws("run", *devkit_args, "--wav-dir", d, "--reset")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(d / "b_seven.wav") and "% seven >>>" in lines[1]
    assert f"{d / 'd_silence.wav'}" in lines and "no detection in d_silence.wav" in lines
    assert "2 files, " in out.stdout and ", 1 without any detection, 2 unreadable files skipped" in out.stdout
    assert "skipped 2 unreadable files:" in out.stderr and "a_broken.wav" in out.stderr and "c_empty.wav" in out.stderr
    assert lines[-1].startswith("Average processing time: ") and "Traceback" not in out.stderr
    (d / "b_seven.wav").unlink()
    (d / "d_silence.wav").unlink()
    out = kws("run", *devkit_args, "--wav-dir", d)
    assert out.returncode == 2 and "none of its 2 wav files could be read" in out.stderr


def test_run_says_when_a_file_has_no_detection(devkit_args, tmp_path):
    _silent_wav(tmp_path / "quiet.wav")
    out = kws("run", *devkit_args, "--wav-file", tmp_path / "quiet.wav")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"no detection in {tmp_path / 'quiet.wav'}"


def test_lists_never_write_into_a_data_folder_unless_asked(tmp_path):
    """`kws lists AUDIO_DIR` without -o once rewrote the folder's own testing_list.txt: now it
    refuses, and --in-place is how to ask for it."""
    from core.audio.wav import write_wav

    audio = tmp_path / "audio"
    for w in ("no", "yes"):
        for s in range(6):
            write_wav(audio / w / f"{s:08x}_nohash_0.wav", np.zeros(400, np.float32), 16000)
    own = "no/00000000_nohash_0.wav\nyes/00000000_nohash_0.wav\n"
    (audio / "testing_list.txt").write_text(own)
    (audio / "validation_list.txt").write_text("no/00000001_nohash_0.wav\n")
    before = sorted(p.name for p in audio.iterdir())
    out = kws("lists", audio)
    assert out.returncode == 2 and "-o OUTDIR" in out.stderr and "--in-place" in out.stderr
    assert sorted(p.name for p in audio.iterdir()) == before
    assert (audio / "testing_list.txt").read_text() == own
    out = kws("lists", audio, "-o", tmp_path / "lists")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "lists" / "training_list.txt").is_file() and sorted(p.name for p in audio.iterdir()) == before
    out = kws("lists", audio, "--in-place")
    assert out.returncode == 0, out.stderr
    assert (audio / "training_list.txt").is_file() and (audio / "testing_list.orig.txt").read_text() == own
    out = kws("lists", audio, "--in-place", "-o", tmp_path / "x")
    assert out.returncode == 2 and "not allowed with" in out.stderr


def _subcommands():
    import argparse

    from core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _options(sp):
    import argparse

    return [a for a in sp._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_every_option_has_help_and_shows_its_default():
    for name, sp in _subcommands().items():
        for a in _options(sp):
            assert a.help and a.help.strip(), f"kws {name} {a.option_strings[0]}: no help text"
            shown = sp._get_formatter()._expand_help(a)
            if a.nargs != 0 and a.default not in (None, False, ""):
                assert "default" in shown, f"kws {name} {a.option_strings[0]}: default {a.default!r} not shown"
    train = " ".join(_subcommands()["train"].format_help().split())
    assert "passes over the training rows (default: 30)" in train
    assert "frames per row (default: 40)" in " ".join(_subcommands()["dataset"].format_help().split())  # not "(40)"


def test_short_flags_mean_the_same_everywhere():
    """One meaning per short flag across all commands (`-c` is --classifier, never --categories),
    and one short flag per long option."""
    meaning: dict[str, set] = {}
    shorts: dict[str, set] = {}
    for sp in _subcommands().values():
        for a in _options(sp):
            longs = [o for o in a.option_strings if o.startswith("--")]
            for o in a.option_strings:
                if not o.startswith("--"):
                    meaning.setdefault(o, set()).add(longs[0])
                    shorts.setdefault(longs[0], set()).add(o)
    clash = {k: v for k, v in meaning.items() if len(v) > 1}
    assert not clash, clash
    assert not {k: v for k, v in shorts.items() if len(v) > 1}
    assert meaning["-c"] == {"--classifier"} and meaning["-cat"] == {"--categories"}


def test_onnx_export_warnings_are_silenced_only_there(tmp_path):
    """torch's legacy exporter warns on every export (deprecation, GRU batch size): silenced inside
    `onnx_export_warnings()` only; the same export outside it still warns, and the filters are
    restored afterwards."""
    import re
    import warnings

    import torch

    from core.quiet import ONNX_EXPORT_WARNINGS, onnx_export_warnings

    gru = torch.nn.GRU(4, 3, batch_first=True)

    def export():
        torch.onnx.export(gru, (torch.zeros(2, 5, 4),), str(tmp_path / "g.onnx"), dynamo=False,
                          dynamic_axes={"input": {0: "batch", 1: "frames"}}, input_names=["input"])

    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as loud:
        warnings.simplefilter("always")
        export()
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        with onnx_export_warnings():
            export()
        warnings.warn("still shown", UserWarning, stacklevel=1)
    def known(records):
        return {m for w in records for c, m in ONNX_EXPORT_WARNINGS if isinstance(w.message, c)
                and re.match(m, str(w.message))}

    legacy, batch = ONNX_EXPORT_WARNINGS[0][1], ONNX_EXPORT_WARNINGS[2][1]
    assert {legacy, batch} <= known(loud)
    assert known(quiet) == set() and "still shown" in [str(w.message) for w in quiet]
    assert warnings.filters == filters


def test_train_prints_no_exporter_warnings(tmp_path):
    from core.data.dataset import Dataset, save_dataset

    rng = np.random.default_rng(0)
    meta = {"featurizer": {"sample_rate": 16000, "hop_length": 512}, "sample_rate": 16000, "hop_length": 512}
    for split, n in (("training", 32), ("validation", 8)):
        y = rng.integers(0, 2, n)
        save_dataset(tmp_path / f"{split}.npz", Dataset(rng.standard_normal((n, 6, 8)).astype(np.float32),
                                                        y.astype(np.int64), ["a", "b"], meta, {"window_frames": 6}))
    out = subprocess.run([sys.executable, "-W", "default", "-m", "core", "train", "-d", tmp_path, "-o", tmp_path / "m",
                          "--epochs", "1", "--hidden-size", "4", "--num-layers", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "m" / "model.onnx").is_file()
    assert "Warning" not in out.stderr, out.stderr
