"""FLAC, OGG/Vorbis, Opus and MP3 on real clips, converted at test time by independent encoders (sox with
libsox-fmt-mp3 for FLAC/Vorbis/MP3, opusenc for Opus; scripts/sysdeps.sh installs both), read through
every path a user has: read_wav, kws run, kws eval, kws lists + kws dataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.formats import AUDIO_EXTENSIONS, DIALOG_FILTER
from core.audio.wav import read_wav, read_wav_info

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("flac", "ogg", "opus", "mp3")
LOSSY = ("ogg", "opus", "mp3")
CONTAINERS = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS"),
              "mp3": ("MP3", "MPEG_LAYER_III")}
# LAME's encoder delay (576) plus the decoder delay of an MPEG layer III decoder (529 samples):
# libsndfile does not trim it, so a decoded MP3 starts 1105 samples late. Vorbis and Opus store their
# pre-skip in the stream and come back aligned.
MP3_DELAY = 576 + 529


def convert(src: Path, dst: Path) -> Path:
    """src -> dst with the format named by dst's extension, by sox (opusenc for Opus)."""
    cmd = ["opusenc", "--quiet", str(src), str(dst)] if dst.suffix == ".opus" else ["sox", str(src), str(dst)]
    assert shutil.which(cmd[0]), f"{cmd[0]} is missing: run scripts/sysdeps.sh"
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return dst


def kws(*args, timeout=300):
    out = subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def clips(shared_data, tmp_path_factory) -> Path:
    """WORD/WORD.{wav,flac,ogg,opus,mp3} for seven and bed (ELL's example clips)."""
    root = tmp_path_factory.mktemp("clips")
    for word in ("seven", "bed"):
        (root / word).mkdir()
        src = shared_data / "ell_examples" / f"{word}.wav"
        shutil.copyfile(src, root / word / f"{word}.wav")
        for fmt in FORMATS:
            convert(src, root / word / f"{word}.{fmt}")
    return root


@pytest.fixture(scope="module")
def devkit_args(shared_data):
    d = shared_data / "ell_devkit_model"
    return ["--featurizer", d / "featurizer.ell", "--classifier", d / "classifier.ell",
            "--categories", d / "categories.txt"]


def test_the_encoders_are_installed_and_every_format_is_known():
    formats = subprocess.run(["sox", "-h"], capture_output=True, text=True).stdout
    listed = formats.split("AUDIO FILE FORMATS:")[1].splitlines()[0].split()
    assert {"flac", "ogg", "vorbis", "mp3"} <= set(listed), "sox lacks a format: run scripts/sysdeps.sh"
    assert shutil.which("opusenc"), "opusenc is missing: run scripts/sysdeps.sh"
    assert tuple(f".{f}" for f in ("wav", *FORMATS)) == tuple(e for e in AUDIO_EXTENSIONS if e != ".oga")
    assert all(f"*.{f}" in DIALOG_FILTER for f in ("wav", *FORMATS))


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_read_by_content_not_by_name(clips, tmp_path, fmt):
    path = clips / "seven" / f"seven.{fmt}"
    info = read_wav_info(path)
    assert (info.format, info.subtype) == CONTAINERS[fmt]
    assert (info.sample_rate, info.channels) == (16000, 1)
    x, rate = read_wav(path)
    renamed = tmp_path / "seven.wav"  # a FLAC / Vorbis / Opus / MP3 file under a .wav name
    shutil.copyfile(path, renamed)
    y, rate2 = read_wav(renamed)
    assert rate == rate2 == 16000
    np.testing.assert_array_equal(y, x)
    assert np.abs(x).max() <= 1.0


def test_flac_is_bit_exact(clips):
    for word in ("seven", "bed"):
        wav, _ = read_wav(clips / word / f"{word}.wav")
        flac, _ = read_wav(clips / word / f"{word}.flac")
        np.testing.assert_array_equal(flac, wav)


def aligned(x: np.ndarray, ref: np.ndarray, max_lag: int = 2000) -> tuple[np.ndarray, int]:
    """x shifted by the lag (0..max_lag) that best matches ref, cut / padded to ref's length."""
    n = len(ref) - max_lag
    lag = max(range(max_lag + 1), key=lambda k: float(np.dot(x[k : k + n], ref[:n])) if k + n <= len(x) else -1.0)
    y = x[lag : lag + len(ref)]
    return np.pad(y, (0, len(ref) - len(y))), lag


@pytest.mark.parametrize("fmt", LOSSY)
def test_lossy_formats_keep_the_features(clips, devkit, fmt):
    """Perceptual codecs keep each critical band's energy, not the waveform. At the encoders' default
    rates for 16 kHz mono speech (Vorbis ~56, Opus ~39, MP3 24 kbit/s) a band's energy stays within
    ~1.5 dB (CELT quantises band energies explicitly, finer than that; MP3/Vorbis scale factors step
    1.5 dB). The DevKit features are log(M + 1) of mel magnitudes M: where M > 1 (log(2) = 0.69 and
    above) a band error of e dB moves a feature by about e/20 * ln(10) = 0.115 e, i.e. 0.17 for
    1.5 dB; that bounds the mean error over those bins. The clip must also stay much nearer to its
    own wav than the other word is (a garbage decode fails that)."""
    from core.features.featurizer import featurize

    featurizer = devkit[0]
    wav, _ = read_wav(clips / "seven" / "seven.wav")
    bed, _ = read_wav(clips / "bed" / "bed.wav")
    x, lag = aligned(read_wav(clips / "seven" / f"seven.{fmt}", 16000)[0], wav)
    assert lag == (MP3_DELAY if fmt == "mp3" else 0)
    f_wav, f_lossy, f_bed = (featurize(featurizer, s[: len(wav)]) for s in (wav, x, bed))
    loud = f_wav > np.log(2.0)
    assert loud.sum() > 100  # real speech: many bins in the log regime
    err = np.abs(f_lossy - f_wav)
    assert err[loud].mean() < 0.115 * 1.5
    assert err.mean() < 0.25 * np.abs(f_bed - f_wav).mean()


@pytest.mark.shared
@pytest.mark.slow
def test_kws_run_detects_seven_in_every_format(clips, devkit_args, tmp_path):
    folder = tmp_path / "sevens"
    folder.mkdir()
    for fmt in FORMATS:
        shutil.copyfile(clips / "seven" / f"seven.{fmt}", folder / f"seven.{fmt}")
    out = kws("run", *devkit_args, "--wav-dir", folder, "--reset").splitlines()
    starts = [i for i, ln in enumerate(out) if ln.startswith(str(folder))]
    assert [Path(out[i]).name for i in starts] == sorted(f"seven.{f}" for f in FORMATS)
    for a, b in zip(starts, starts[1:] + [len(out)], strict=True):
        assert any(ln.startswith("<<< DETECTED (20) ") and ln.endswith("% seven >>>") for ln in out[a:b]), out[a:b]
    renamed = tmp_path / "really_an_mp3.wav"
    shutil.copyfile(clips / "seven" / "seven.mp3", renamed)
    out = kws("run", *devkit_args, "--wav-file", renamed)
    assert "% seven >>>" in out


@pytest.mark.shared
@pytest.mark.slow
def test_kws_eval_on_a_list_of_converted_clips(clips, devkit_args, tmp_path):
    lines = [f"{w}/{w}.{f}" for w in ("seven", "bed") for f in ("wav", *FORMATS)]
    (clips / "list.txt").write_text("\n".join(lines) + "\n")
    kws("eval", *devkit_args, "--list-file", clips / "list.txt", "--reset", "--quiet", "--json", tmp_path / "e.json")
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["skipped"] == [] and result["total"] == 10
    by_path = {Path(c["path"]).name: c for c in result["clips"]}
    assert all(c["predicted"] == c["expected"] for c in result["clips"]), result["clips"]
    for w in ("seven", "bed"):  # identical samples, identical probabilities
        assert by_path[f"{w}.flac"]["probability"] == by_path[f"{w}.wav"]["probability"]


@pytest.mark.shared
@pytest.mark.slow
def test_kws_lists_and_dataset_on_folders_of_converted_clips(shared_data, devkit_args, tmp_path):
    """The same clips as WAV and as FLAC give the same lists and identical datasets; a folder of
    Vorbis / Opus / MP3 clips is listed and featurized whole."""
    src = shared_data / "speech_commands_v0.01_sample"
    words = ("seven", "bed", "yes")
    fmts = {"wav": ["wav"], "flac": ["flac"], "lossy": list(LOSSY)}
    for name, exts in fmts.items():
        for w in words:
            (tmp_path / name / w).mkdir(parents=True)
            for i, clip in enumerate(sorted((src / w).glob("*.wav"))[:3]):
                dst = tmp_path / name / w / f"{clip.stem}.{exts[i % len(exts)]}"
                shutil.copyfile(clip, dst) if dst.suffix == ".wav" else convert(clip, dst)
    featurizer = devkit_args[1]
    rows = {}
    for name in fmts:
        kws("lists", tmp_path / name, "-o", tmp_path / f"lists_{name}")
        listed = sorted(ln for s in ("training", "validation", "testing")
                        for ln in (tmp_path / f"lists_{name}" / f"{s}_list.txt").read_text().split())
        assert len(listed) == 9 and all(Path(ln).suffix[1:] in fmts[name] for ln in listed)
        kws("dataset", "--lists", tmp_path / f"lists_{name}", "--featurizer", featurizer, "-o", tmp_path / f"ds_{name}")
        rows[name] = {s: np.load(tmp_path / f"ds_{name}" / f"{s}.npz") for s in ("training", "validation", "testing")}
        assert sum(len(d["labels"]) for d in rows[name].values()) >= 9  # every 1 s clip gives a row
        assert all(np.isfinite(d["features"]).all() for d in rows[name].values())
    for split in rows["wav"]:
        a, b = rows["wav"][split], rows["flac"][split]
        for key in ("features", "labels", "categories"):  # (meta names the list files, which differ)
            np.testing.assert_array_equal(a[key], b[key])
