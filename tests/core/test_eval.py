"""Evaluation on a tiny known case: a two-class 'pitch' classifier on synthetic tones."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import write_wav
from core.evaluate.passrate import decide, evaluate_clips, read_list
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


def test_eval_command_json(tone_list, tmp_path):
    feat, clf = pitch_classifier()
    modelfile.save(feat, tmp_path / "f.kwm")
    modelfile.save(clf, tmp_path / "c.kwm")
    out = subprocess.run([sys.executable, "-m", "core", "eval", "-f", tmp_path / "f.kwm", "-c", tmp_path / "c.kwm",
                          "-l", tone_list, "--reset", "--json", tmp_path / "r.json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3 passed, 1 failed, pass rate of 75.00 %" in out.stdout
    assert "Average processing time:" in out.stdout
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
