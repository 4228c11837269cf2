"""Segmentation (core.data.segment, `kws segment`): words cut out of stitched recordings of real
Speech Commands clips with silence and real background noise between them, at known positions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav, write_wav
from core.cli import main as kws
from core.data.augment import power
from core.data.lists import make_lists
from core.data.segment import Framing, SegmentConfig, Segmenter, safe_label, segment_samples
from core.errors import DataError
from core.evaluate.stream import mix_at_snr

SR = 16000
FRAMING = Framing(SR, 512, 512)  # the bundled featurizer's framing
SPEECH_RMS = 0.1  # every word at one level (-20 dBFS), as one speaker at one distance from the microphone


def reference(x: np.ndarray, within_db: float = 25.0) -> tuple[int, int, float, float]:
    """Where the word is in a clean clip, measured independently of the segmenter (10 ms frames of
    the samples, not the featurizer's 32 ms mel frames): (first, last sample within `within_db` of
    the loudest frame, centre of the power above the clip's own noise, dynamic range in dB)."""
    n = len(x) // 160
    e = np.mean(x[: n * 160].astype(np.float64).reshape(n, 160) ** 2, axis=1) + 1e-12
    db = 10 * np.log10(e)
    noise = np.percentile(e, 10)
    on = np.nonzero(db > db.max() - within_db)[0]
    above = np.maximum(e - noise, 0)
    centre = float(above @ (np.arange(n) * 160 + 80) / above.sum())
    return int(on[0] * 160), int((on[-1] + 1) * 160), centre, float(db.max() - 10 * np.log10(noise))


@pytest.fixture(scope="module")
def clean_clips(shared_data):
    """Real clips whose word stands 35 dB above the clip's own noise (so the reference is sharp) and
    lasts at least 0.1 s (one clip of the sample is a 60 ms click), each scaled to one speech level."""
    out = []
    for f in sorted((shared_data / "speech_commands_v0.01_sample").glob("*/*.wav")):
        x, _ = read_wav(f, SR)
        a, b, c, dyn = reference(x)
        if dyn > 35 and b - a >= 0.1 * SR:
            out.append((x * np.float32(SPEECH_RMS / np.sqrt(power(x[a:b]))), a, b, c))
    assert len(out) > 100
    return out


def stitched(clips, noise_file: Path, n: int, snr_db: float, gap_s=(0.3, 1.0), seed=0):
    """n clips with silence gaps (a normal speaking pace: one word every ~1.5-2 s) and background
    noise under everything at `snr_db` against the speech: (samples, [(start, end, centre, core
    start, core end) in s]); the core is the part within 15 dB of the word's peak, well above the
    noise (quieter edges may be under it)."""
    rng = np.random.default_rng(seed)
    parts, truth, pos = [np.zeros(SR, np.float32)], [], SR
    for i in rng.choice(len(clips), n, replace=False):
        x, a, b, c = clips[i]
        core_a, core_b, _, _ = reference(x, within_db=15)
        truth.append(tuple((pos + v) / SR for v in (a, b, c, core_a, core_b)))
        gap = np.zeros(int(rng.uniform(*gap_s) * SR), np.float32)
        parts += [x, gap]
        pos += len(x) + len(gap)
    s = np.concatenate(parts)
    noise, _ = read_wav(noise_file, SR)
    noise = np.tile(noise, -(-len(s) // len(noise)))[: len(s)]
    return mix_at_snr(s, noise, snr_db, SPEECH_RMS**2), truth


def match(words, truth):
    """Each word found to the true word whose span (+-0.3 s) holds its centre: (finds per true word,
    centre errors in s, words matching none)."""
    finds, errors, extra = [0] * len(truth), [], 0
    for u in words:
        k = [i for i, t in enumerate(truth) if t[0] - 0.3 <= u.centre_s <= t[1] + 0.3]
        if not k:
            extra += 1
            continue
        finds[k[0]] += 1
        errors.append(u.centre_s - truth[k[0]][2])
    return finds, np.abs(errors), extra


@pytest.mark.parametrize("noise", ["pink_noise", "running_tap", "exercise_bike"])
def test_finds_every_word_of_a_stitched_recording(clean_clips, shared_data, noise):
    s, truth = stitched(clean_clips, shared_data / "background_noise" / f"{noise}.wav", 24, snr_db=20.0)
    words = segment_samples(s, FRAMING)
    finds, errors, extra = match(words, truth)
    assert finds.count(0) == 0, f"missed {finds.count(0)} of {len(truth)}"
    assert max(finds) == 1 and extra == 0, f"doubled {sum(f > 1 for f in finds)}, {extra} found in the noise"
    assert errors.max() < 0.050  # the target; measured here: at most ~11 ms (mean ~3 ms)
    for u, (_, _, _, core_a, core_b) in zip(words, truth):
        assert len(u.samples) == SR and u.samples.dtype == np.float32
        # the clip holds the word's core and is cut from the recording itself
        assert u.clip_start_s <= core_a and core_b <= u.clip_start_s + 1.0
        k = round(u.clip_start_s * SR)
        np.testing.assert_array_equal(u.samples, s[k: k + SR])
        assert 15 < u.snr_db < 35  # speech at 20 dB SNR over the word's span, louder in its frames


def test_streaming_gives_the_same_words_as_one_array(clean_clips, shared_data):
    s, _ = stitched(clean_clips, shared_data / "background_noise" / "pink_noise.wav", 12, snr_db=20.0, seed=3)
    whole = segment_samples(s, FRAMING)
    seg, got, i = Segmenter(FRAMING), [], 0
    rng = np.random.default_rng(1)
    while i < len(s):  # blocks of any size, as a microphone delivers them
        k = int(rng.integers(1, 3000))
        got += seg.push(s[i: i + k])
        i += k
    early = len(got)
    got += seg.flush()
    assert early >= len(whole) - 1  # all but (at most) the last come out before the end of the audio
    assert [(u.start_s, u.end_s, u.centre_s, u.clip_start_s) for u in got] == \
           [(u.start_s, u.end_s, u.centre_s, u.clip_start_s) for u in whole]
    for a, b in zip(got, whole):
        np.testing.assert_array_equal(a.samples, b.samples)
    assert len(seg._audio) < 3 * SR  # only the audio still needed is kept


def test_words_at_the_edges_and_short_recordings(clean_clips):
    x, a, b, _ = clean_clips[0]
    rng = np.random.default_rng(0)
    hiss = lambda n: (rng.standard_normal(n) * SPEECH_RMS * 10 ** (-25 / 20)).astype(np.float32)  # noqa: E731
    # a word right at the start and one at the very end: the clips stay inside the recording
    s = np.concatenate([x[a:], hiss(SR), x[:b]]) + hiss(len(x) - a + SR + b)
    words = segment_samples(s, FRAMING)
    assert len(words) == 2
    assert words[0].clip_start_s == 0.0 and words[1].clip_start_s == (len(s) - SR) / SR
    # shorter than a clip: padded with silence after the recording
    short = np.concatenate([hiss(SR // 4), x[a:b] + hiss(b - a), hiss(SR // 8)])
    (w,) = segment_samples(short, FRAMING)
    assert w.clip_start_s == 0.0 and not w.samples[len(short):].any()
    np.testing.assert_array_equal(w.samples[: len(short)], short)
    # silence and steady noise hold no word; a click is too short to be one
    assert segment_samples(np.zeros(3 * SR, np.float32), FRAMING) == []
    click = hiss(3 * SR)
    click[SR: SR + 200] += 0.5
    assert segment_samples(click, FRAMING) == []


def test_config_and_labels_are_checked():
    with pytest.raises(ValueError, match="off_db"):
        SegmentConfig(on_db=6, off_db=9)
    with pytest.raises(ValueError, match="clip_s"):
        SegmentConfig(clip_s=0)
    with pytest.raises(ValueError, match="hop_length"):
        Framing(16000, 512, 0)
    for bad in ("", "a/b", "..", "_background_noise_", ".hidden"):
        with pytest.raises(DataError):
            safe_label(bad)


def test_kws_segment_writes_speech_commands_folders(clean_clips, shared_data, tmp_path, capsys):
    s, truth = stitched(clean_clips, shared_data / "background_noise" / "pink_noise.wav", 6, snr_db=20.0, seed=5)
    long = tmp_path / "session.wav"
    write_wav(long, s, SR)
    out = tmp_path / "words"
    assert kws(["segment", str(long), "--label", "hello", "-o", str(out), "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "6 words of 'hello' found" in text
    files = sorted((out / "hello").iterdir(), key=lambda p: int(p.stem.split("_")[-1]))
    assert [p.name for p in files] == [f"session_nohash_{i}.wav" for i in range(6)]
    doc = json.loads((tmp_path / "s.json").read_text())
    for p, w, (_, _, c, _, _) in zip(files, doc["words"], truth):
        y, rate = read_wav(p)
        assert rate == SR and len(y) == SR
        assert abs(w["centre_s"] - c) < 0.050 and w["file"] == str(p)
        k = round(w["clip_start_s"] * SR)
        np.testing.assert_allclose(y, s[k: k + SR], atol=1 / 32768)  # 16-bit rounding
    # a second session adds to the folder (numbers go on), --dry-run writes nothing
    assert kws(["segment", str(long), "--label", "hello", "-o", str(out), "--speaker", "session"]) == 0
    assert kws(["segment", str(long), "--label", "hello", "--dry-run"]) == 0
    assert len(list((out / "hello").iterdir())) == 12
    assert not list(out.rglob(".*.tmp"))
    lists = make_lists([out])  # `kws lists` takes it
    assert lists.categories == ("hello",) and len(lists.training + lists.validation + lists.testing) == 12
    capsys.readouterr()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    assert kws(["segment", str(bad), "--label", "hello", "-o", str(out)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert kws(["segment", str(long), "--label", "../x", "-o", str(out)]) == 2


def test_collect_words_writes_as_it_goes_and_stop_keeps_what_was_said(clean_clips, shared_data, tmp_path):
    import threading

    from core.data.segment import collect_words

    s, truth = stitched(clean_clips, shared_data / "background_noise" / "pink_noise.wav", 8, snr_db=20.0, seed=7)
    cancel, seen, levels = threading.Event(), [], []
    stop_at = truth[4][1] + 0.05  # Stop pressed just after the fifth word

    def chunks():
        for i in range(0, len(s), 1600):  # 0.1 s chunks, as from a microphone
            if i / SR >= stop_at:
                cancel.set()
            yield s[i: i + 1600]

    def on_word(u, path):
        assert path.is_file()  # written before the next word is heard
        seen.append(path)

    got = collect_words(chunks(), FRAMING, outdir=tmp_path, label="hi", speaker="me", cancel=cancel,
                        on_word=on_word, on_level=levels.append)
    assert [p for _, p in got] == seen == [tmp_path / "hi" / f"me_nohash_{i}.wav" for i in range(5)]
    whole = segment_samples(s[: int(np.ceil(stop_at * 10)) * 1600], FRAMING)
    assert [u.centre_s for u, _ in got] == [u.centre_s for u in whole]
    assert len(levels) == int(np.ceil(stop_at * 10)) and max(levels) < 0  # peak dBFS per chunk
