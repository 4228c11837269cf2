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
    assert lines[-1].startswith("Average processing time: ")
    assert 0 < float(lines[-1].split(":")[1]) < 0.05


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
