"""Evaluation on a tiny known case: a two-class 'pitch' classifier on synthetic tones."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import write_wav
from core.evaluate.passrate import attributed, carried_over, decide, evaluate_clips, read_list
from core.evaluate.stream import Event, Stream, assemble_stream, mix_at_snr, stream_metrics
from core.features.featurizer import FeaturizerConfig, build_featurizer
from core.graph import modelfile
from core.graph.ir import chain
from core.pipeline import KeywordSpotter

ROOT = Path(__file__).resolve().parents[2]
CATS = ["low", "high"]


def tone(freq, seconds=0.5, sr=16000, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pitch_classifier():
    """Class 0 = energy below ~1 kHz, class 1 = above: a dense layer on log-mel features."""
    cfg = FeaturizerConfig()
    w = np.zeros((2, 80), np.float32)
    w[0, 10:30] = 1.0  # roughly 300 .. 1000 Hz
    w[1, 50:70] = 1.0  # roughly 2.5 .. 5 kHz
    g = chain([("input", {"size": 80}, {}), ("dense", {}, {"weight": w * 3}), ("softmax", {}, {}),
               ("output", {}, {})], {"categories": CATS})
    return build_featurizer(cfg), g


@pytest.fixture
def tone_list(tmp_path):
    for name, f in [("low/a.wav", 500), ("low/b.wav", 600), ("high/c.wav", 3000), ("high/d.wav", 500)]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_wav(tmp_path / name, tone(f), 16000)
    lst = tmp_path / "list.txt"
    lst.write_text("low/a.wav\nlow/b.wav\nhigh/c.wav\nhigh/d.wav\n")  # d is mislabelled on purpose
    return lst


def test_pass_rate_and_confusion_on_known_case(tone_list):
    feat, clf = pitch_classifier()
    res = evaluate_clips(KeywordSpotter(feat, clf), CATS, read_list(tone_list), reset=True)
    assert [r.predicted for r in res.results] == ["low", "low", "high", "low"]
    assert res.passed == 3 and res.rate == 0.75
    assert res.confusion().tolist() == [[2, 0, 0], [1, 1, 0]]
    assert res.per_class() == {"low": (2, 2), "high": (1, 2)}
    assert res.frames == 4 * (8000 // 512)


def test_decisions():
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.7, 0.3]], np.float32)
    assert decide(probs, CATS, "best") == ("high", pytest.approx(0.9))
    assert decide(probs, CATS, "mean") == ("low", pytest.approx(1.6 / 3))
    assert decide(probs, CATS, "best", threshold=0.95)[0] is None


def test_best_frame_passes_over_background_like_ell():
    """ELL's eval_test takes the most confident frame among those a word wins: silence around a
    word, however surely background, does not outvote the word; a clip no word wins is background."""
    cats = ["background_noise", "yes", "no"]
    probs = np.array([[0.99, 0.005, 0.005], [0.3, 0.6, 0.1], [0.2, 0.1, 0.7], [0.98, 0.01, 0.01]], np.float32)
    assert decide(probs, cats, "best") == ("no", pytest.approx(0.7))
    assert decide(probs[[0, 3]], cats, "best") == ("background_noise", pytest.approx(0.99))
    assert decide(probs, ["low", "high", "mid"], "best") == ("low", pytest.approx(0.99))  # no background class


def test_a_word_carried_into_the_next_clip_counts_for_its_own():
    """A model says a word a frame or two after hearing it: when one clip ends on its word, the next
    clip of a continuous stream starts with that word still on top. Those leading frames belong to
    the clip before (attribution "onset"); a clip with nothing else keeps them (the same word twice)."""
    cats = ["background_noise", "yes", "no"]
    bg, yes, no = [0.9, 0.05, 0.05], [0.02, 0.97, 0.01], [0.1, 0.1, 0.8]
    clip = np.array([yes, yes, bg, no, bg], np.float32)
    assert carried_over(clip, 1, [0]) == 2 and carried_over(clip, 2, [0]) == 0 and carried_over(clip, 0, [0]) == 0
    assert decide(clip, cats) == ("yes", pytest.approx(0.97))  # every frame for its own clip (ELL)
    assert decide(clip, cats, before=1) == ("no", pytest.approx(0.8))
    assert decide(clip, cats, before=0) == ("yes", pytest.approx(0.97))  # the stream was quiet before
    same_again = np.array([yes, yes, bg, bg], np.float32)
    assert attributed(same_again, 1, [0]) is same_again
    assert decide(same_again, cats, before=1)[0] == "yes"


class ScriptedSpotter:
    """Hands out prepared (frames, classes) outputs, one array per clip, in playing order."""
    sample_rate = 16000

    def __init__(self, outputs):
        self.outputs, self.resets = list(outputs), 0

    def reset(self):
        self.resets += 1

    def process(self, x):
        return None, self.outputs.pop(0)


def test_continuous_eval_attributes_carried_words_to_their_clip(tmp_path):
    cats = ["background_noise", "yes", "no"]
    bg, yes, no = [0.9, 0.05, 0.05], [0.02, 0.97, 0.01], [0.1, 0.1, 0.8]
    outputs = [np.array([bg, bg, yes], np.float32), np.array([yes, yes, bg, no, bg], np.float32)]
    clips = []
    for name in ("a.wav", "b.wav"):
        write_wav(tmp_path / name, tone(500), 16000)
        clips.append((tmp_path / name, "yes" if name == "a.wav" else "no"))
    onset = evaluate_clips(ScriptedSpotter(outputs), cats, clips, reset=False)
    assert [r.predicted for r in onset.results] == ["yes", "no"]
    frame = evaluate_clips(ScriptedSpotter(outputs), cats, clips, reset=False, attribution="frame")
    assert [r.predicted for r in frame.results] == ["yes", "yes"]
    reset = evaluate_clips(ScriptedSpotter(outputs), cats, clips, reset=True)  # nothing carries over a reset
    assert [r.predicted for r in reset.results] == ["yes", "yes"]
    with pytest.raises(ValueError, match="attribution"):
        evaluate_clips(ScriptedSpotter(outputs), cats, clips, reset=False, attribution="last")


def test_eval_command_json(tone_list, tmp_path):
    feat, clf = pitch_classifier()
    modelfile.save(feat, tmp_path / "f.kwm")
    modelfile.save(clf, tmp_path / "c.kwm")
    out = subprocess.run([sys.executable, "-m", "core", "eval", "-f", tmp_path / "f.kwm", "-c", tmp_path / "c.kwm",
                          "-l", tone_list, "--reset", "--json", tmp_path / "r.json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3 passed, 1 failed, pass rate of 75.00 %" in out.stdout
    assert "Average processing time: " in out.stdout and " ms per frame" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["pass_rate"] == 0.75 and data["confusion"] == [[2, 0, 0], [1, 1, 0]]


def test_stream_metrics_count_hits_misses_and_false_accepts():
    feat, clf = pitch_classifier()
    sr = 16000
    sil = np.zeros(sr, np.float32)
    samples = np.concatenate([sil, tone(3000, 1.0), sil, tone(500, 1.0), sil])
    # the annotation claims a 'high' word where a 'low' tone plays: one miss, one false accept
    events = (Event(1.0, 2.0, "high"), Event(3.0, 4.0, "high"))
    m = stream_metrics(KeywordSpotter(feat, clf), CATS, Stream(samples, sr, events), threshold=0.6)
    labels = [d[1] for d in m.detections]
    assert "high" in labels and "low" in labels
    assert (m.hits, m.misses) == (1, 1)
    assert m.false_accepts == labels.count("low") + labels.count("high") - 1
    assert m.fa_per_hour == pytest.approx(m.false_accepts / (5 / 3600))


def test_mix_at_snr_hits_requested_snr():
    rng = np.random.default_rng(0)
    s, n = tone(440, 1.0), rng.standard_normal(16000).astype(np.float32)
    for snr in (0.0, 10.0, 20.0):
        mixed = mix_at_snr(s, n, snr)
        noise = mixed - s
        got = 10 * np.log10(np.mean(s.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert got == pytest.approx(snr, abs=0.01)


def test_assembled_stream_events_line_up(tmp_path, tone_list):
    stream = assemble_stream(read_list(tone_list), 16000, gap_s=(0.2, 0.4), seed=1)
    assert len(stream.events) == 4
    for e in stream.events:
        seg = stream.samples[int(e.start_s * 16000) : int(e.end_s * 16000)]
        assert np.abs(seg).max() > 0.2  # the tone is there
    assert stream.events[0].start_s >= 0.2


def _models(tmp_path):
    feat, clf = pitch_classifier()
    modelfile.save(feat, tmp_path / "f.kwm")
    modelfile.save(clf, tmp_path / "c.kwm")
    return ["-f", tmp_path / "f.kwm", "-c", tmp_path / "c.kwm"]


def kws_eval(*args):
    return subprocess.run([sys.executable, "-m", "core", "eval", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_missing_and_broken_clips_are_skipped_and_summarised(tone_list, tmp_path):
    """A list naming 200 absent files and one broken wav: the readable clips are scored, the rest
    counted with the first three named; no line per skipped clip."""
    (tmp_path / "high" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    lst = tmp_path / "holes.txt"
    missing = [f"low/gone{i:03d}.wav" for i in range(200)]
    lst.write_text("\n".join(["low/a.wav", *missing[:100], "high/broken.wav", "high/c.wav", *missing[100:]]) + "\n")
    out = kws_eval(*_models(tmp_path), "-l", lst, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "skipped 201 unreadable clips:" in out.stderr and "... and 198 more" in out.stderr
    assert len(out.stderr.splitlines()) <= 6 and "Traceback" not in out.stderr
    assert "2 passed, 0 failed" in out.stdout
    only_missing = tmp_path / "gone.txt"
    only_missing.write_text("\n".join(missing) + "\n")
    out = kws_eval(*_models(tmp_path), "-l", only_missing)
    assert out.returncode == 2 and "none of the 200 clips could be read" in out.stderr
    assert "Traceback" not in out.stderr


def test_play_order_shuffles_continuous_modes_only():
    from core.evaluate.passrate import play_order

    clips = [(Path(f"{w}/{i}.wav"), w) for w in ("a", "b", "c") for i in range(10)]  # sorted by word
    same, how = play_order(clips, continuous=False)
    assert same == clips and "list order" in how
    kept, how = play_order(clips, continuous=True, shuffle=False)
    assert kept == clips and how == "list order (not shuffled)"
    mixed, how = play_order(clips, continuous=True, seed=3)
    assert how == "shuffled (seed 3)" and sorted(mixed) == sorted(clips) and mixed != clips
    assert play_order(clips, continuous=True, seed=3)[0] == mixed  # seeded
    assert play_order(clips, continuous=True, seed=4)[0] != mixed
    # no longer word after word: of 29 neighbours in a random order, ~2/3 differ in word
    changes = sum(a[1] != b[1] for a, b in zip(mixed, mixed[1:], strict=False))
    assert changes > 10


def test_eval_continuous_plays_the_shuffled_order_and_says_so(tone_list, tmp_path):
    from core.evaluate.passrate import play_order

    clips = read_list(tone_list)
    out = kws_eval(*_models(tmp_path), "-l", tone_list, "--quiet", "--seed", "5", "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    assert "continuous, best frame; clip order: shuffled (seed 5)" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    order, _ = play_order(clips, continuous=True, seed=5)
    assert [c["path"] for c in data["clips"]] == [str(p) for p, _ in order] and data["order"] == "shuffled (seed 5)"
    out = kws_eval(*_models(tmp_path), "-l", tone_list, "--quiet", "--no-shuffle", "--json", tmp_path / "r.json")
    assert "clip order: list order (not shuffled)" in out.stdout
    assert [c["path"] for c in json.loads((tmp_path / "r.json").read_text())["clips"]] == [str(p) for p, _ in clips]


def test_modes_side_by_side_skip_unreadable_clips_and_shuffle(shared_data, tmp_path):
    """--compare (the DevKit: it has GRUs): 3 real clips between 50 missing ones; each mode scores
    the 3 in the same shuffled order, and says so."""
    d, sample = shared_data / "ell_devkit_model", shared_data / "speech_commands_v0.01_sample"
    real = [f"{w}/{sorted((sample / w).glob('*.wav'))[0].name}" for w in ("seven", "bed", "yes")]
    lst = tmp_path / "list.txt"
    lines = [str(sample / r) for r in real] + [str(sample / f"no/missing{i}.wav") for i in range(50)]
    lst.write_text("\n".join(lines[:1] + lines[3:28] + lines[1:3] + lines[28:]) + "\n")
    out = kws_eval("-f", d / "featurizer.ell", "-c", d / "classifier.ell", "--categories", d / "categories.txt",
                   "-l", lst, "--compare", "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    assert "clip order: shuffled (seed 0)" in out.stdout.splitlines()[0]
    assert ("(3 clips, best frame per clip; clip order: shuffled (seed 0); a word carried into the next clip "
            "counts for its own)") in out.stdout
    assert "skipped 50 unreadable clips:" in out.stderr and "... and 47 more" in out.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["attribution"] == "onset"
    orders = {m: [c["path"] for c in r["clips"]] for m, r in data["list_results"].items()}
    assert orders["reset"] == orders["continuous"] == orders["vad"] and sorted(orders["vad"]) == sorted(lines[:3])
