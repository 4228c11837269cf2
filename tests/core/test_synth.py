"""kws synth: real espeak-ng speech in Speech Commands layout, 16 kHz, 1 s, trimmed and centred."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav, read_wav_info
from core.data.lists import make_lists, speaker_id
from core.data.synth import SynthConfig, centre, english_voices, plan, trim_silence, variants

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
NAME = re.compile(r"^espeak-[A-Za-z0-9-]+_nohash_\d+\.wav$")


def kws(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_voices_and_variants():
    voices = english_voices()
    assert len(voices) == 8 and all(not v.file.startswith("mb/") for v in voices)
    assert {"en-us", "en-gb"} <= {v.code for v in voices}
    assert len(variants()) >= 100 and "klatt3" in variants()


def test_plan_is_complete_or_a_seeded_sample():
    full = plan(["yes"], SynthConfig())
    assert len(full) == 8 * (1 + len(variants())) * 3 * 3
    a = plan(["yes", "no"], SynthConfig(per_word=5, seed=1))
    b = plan(["yes", "no"], SynthConfig(per_word=5, seed=1))
    c = plan(["yes", "no"], SynthConfig(per_word=5, seed=2))
    assert a == b and a != c and len(a) == 10
    assert len({u.relpath for u in full}) == len(full)  # unique file names
    with pytest.raises(ValueError, match="word"):
        plan(["../etc"], SynthConfig(per_word=1))


def test_trim_and_centre():
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / sr)
    x = np.concatenate([np.zeros(3000), tone, 1e-4 * np.ones(5000)]).astype(np.float32)
    y = trim_silence(x, sr, -40)
    assert abs(len(y) - 4000) <= 160 and np.abs(y[:160]).max() > 0.1
    c = centre(y, sr)
    nz = np.flatnonzero(np.abs(c) > 1e-3)
    assert len(c) == sr and abs((nz[0] + nz[-1]) / 2 - sr / 2) < 200


def test_synth_writes_speech_commands_layout(tmp_path):
    out = kws("synth", "--words", "yes,no", "-o", tmp_path / "syn", "--per-word", "6", "--jobs", "2")
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "syn").glob("*/*.wav"))
    assert {p.parent.name for p in files} == {"yes", "no"} and len(files) == 12
    for p in files:
        assert NAME.match(p.name), p.name
        info = read_wav_info(p)
        assert (info.sample_rate, info.channels, info.bits_per_sample, info.frames) == (16000, 1, 16, 16000)
        x, _ = read_wav(p)
        nz = np.flatnonzero(np.abs(x) > 1e-3)
        assert 0.15 < (nz[-1] - nz[0]) / 16000 < 1.0  # a word, not silence nor a clipped-off fragment
        assert abs((nz[0] + nz[-1]) / 2 - 8000) < 800  # centred
        assert np.abs(x[:100]).max() == 0 and np.abs(x[-100:]).max() == 0  # padded with silence
    doc = json.loads((tmp_path / "syn" / "synth.json").read_text())
    assert doc["written"] == 12 and doc["skipped"] == []
    # one voice+variant is one speaker in every word and take: the speaker split keeps it together
    out = kws("synth", "--words", "up,down", "-o", tmp_path / "two", "--voices", "en-us,en-gb-x-rp,en-029",
              "--no-variants", "--speeds", "175", "--pitches", "40,60")
    assert out.returncode == 0, out.stderr
    lists = make_lists([tmp_path / "two"], )
    seen: dict[str, set] = {}
    for split in ("training", "validation", "testing"):
        for p in getattr(lists, split):
            seen.setdefault(speaker_id(p.name), set()).add((split, p.parent.name, p.name))
    assert sorted(seen) == ["espeak-en-029-plain", "espeak-en-gb-x-rp-plain", "espeak-en-us-plain"]
    for files in seen.values():
        assert len(files) == 4 and len({split for split, _, _ in files}) == 1
    assert lists.categories == ("down", "up")
