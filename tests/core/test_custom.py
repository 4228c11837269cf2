"""kws custom end to end at toy size (espeak-ng only, one epoch of a tiny GRU): the output set, its
classes, the stored threshold, provenance, and that it runs; the recipe's pieces checked on their own."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.cli import main as kws
from core.errors import DataError
from core.graph import modelfile
from core.pipeline import DETECTOR_KEY
from core.train.custom import (
    OTHER_WORDS,
    CustomConfig,
    _split,
    build_custom,
    homophones,
    partial_clips,
    sound_alikes,
    syllables,
    user_folders,
    word_extent,
)

pytest.importorskip("torch")


def test_sound_alikes_and_user_folders(tmp_path):
    al = sound_alikes("hello")
    assert len(al) == 15 and "hello" not in al and len(set(al)) == 15
    assert {"jello", "hellot"} & set(sound_alikes("hello", limit=100))  # onset swapped, ending changed
    assert {"hallo", "hillo"} <= set(sound_alikes("hello", vowels=100))  # its vowel changed
    assert sound_alikes("hello") == sound_alikes("hello")  # seeded
    # a sound-alike that espeak-ng says as the word itself would teach the detector its own word is not it
    assert homophones("cat", ["kat", "cot"]) == {"kat"}
    assert "kat" not in sound_alikes("cat", limit=100) and "cot" in sound_alikes("cat", vowels=100)
    (tmp_path / "one").mkdir()
    with pytest.raises(DataError, match="no recordings of 'hi'"):
        user_folders(tmp_path / "one", ["hi"])
    with pytest.raises(DataError, match="not a folder"):
        user_folders(tmp_path / "nope", ["hi"])
    with pytest.raises(ValueError, match="epochs"):
        CustomConfig(epochs=0)
    with pytest.raises(ValueError, match="real_held_out_percent"):
        CustomConfig(real_held_out_percent=0)
    with pytest.raises(ValueError, match="partial_synth"):
        CustomConfig(partial_synth=1.5)
    with pytest.raises(ValueError, match="partial_copies"):
        CustomConfig(partial_copies=-1)


def test_kws_custom_toy_run(tmp_path, shared_data, capsys):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/sysdeps.sh)")
    src = shared_data / "speech_commands_v0.01_bed_cat_happy" / "happy"
    clips = tmp_path / "clips"
    clips.mkdir()
    for f in sorted(src.glob("e6e29c47_*.wav"))[:4]:  # one training speaker
        shutil.copyfile(f, clips / f.name)
    out = tmp_path / "out"
    assert kws(["custom", "happy", "--clips", str(clips), "--noise-dir", str(shared_data / "background_noise"),
                "-o", str(out), "--engines", "espeak", "--synth-per-word", "12", "--negative-takes", "1",
                "--user-copies", "1", "--background-rows", "20", "--epochs", "1", "--hidden-size", "8",
                "--num-layers", "1", "--init", "", "--calibration-minutes", "2", "--jobs", "1",
                "--partial-others", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "Your clips: happy 4" in text and "threshold" in text
    assert (out / "categories.txt").read_text().split() == ["background", "unknown", "happy"]
    clf = modelfile.load(out / "classifier.kwm")
    assert clf.categories == ["background", "unknown", "happy"] and clf.output_size == 3
    # two detectors (seeds 0 and 1000, the same rows) averaged in one graph (core.graph.ensemble)
    assert clf.metadata["ensemble"] == 2 and len(clf.by_op("gru")) == 2 and clf.output_node.inputs == ["mean"]
    g0, g1 = clf.by_op("gru")
    assert not np.array_equal(g0.params["w_hh"], g1.params["w_hh"])
    det = clf.metadata[DETECTOR_KEY]
    assert 0.5 <= det["threshold"] <= 0.999 and det["calibration"]["positives"] > 0
    rule = det["calibration"]["clip_rule"]  # the stored point: at most 1 % of other words' clips fire it
    assert (rule["threshold"], rule["smoothing"]) == (det["threshold"], det["smoothing"])
    assert rule["fa_clips"] <= rule["target_fa_clips"] == 0.01 and rule["other_words"] > 0
    assert det["calibration"]["other_words"] > 0 and det["calibration"]["ignore"] == ["background", "unknown"]
    assert 60 < det["calibration"]["stream_s"] < 240  # about --calibration-minutes
    assert clf.metadata["provenance"]["user_clips"] == {"happy": 4}
    # held-out voices really are held out: no speaker of the synthetic keyword in both splits
    synth = sorted((out / "work" / "synth" / "happy").glob("*.wav"))
    train, held = _split(synth, CustomConfig().held_out_percent)
    assert held and {p.name.split("_nohash_")[0] for p in train}.isdisjoint(p.name.split("_nohash_")[0] for p in held)
    # two syllables: your 4 clips and 30 % of the training voices' takes cut off part-way, as unknown
    assert "cutting happy off part-way" in text
    assert len(list((out / "work" / "partial").glob("*.wav"))) == 4 + round(0.3 * len(train))
    assert not (out / "work" / "negatives" / "happy").exists()
    # --partial-others 0.5: half the other words' training takes (sound-alikes and most others) cut off too
    negatives = len(list((out / "work" / "negatives").glob("*/*.wav")))
    assert 0.3 * negatives <= len(list((out / "work" / "partial_others").glob("*.wav"))) <= 0.5 * negatives + 1
    assert (out / "work" / "negatives" / OTHER_WORDS[0]).is_dir()
    capsys.readouterr()
    assert kws(["run", "-f", str(out / "featurizer.kwm"), "-c", str(out / "classifier.kwm"),
                "-w", str(clips / sorted(p.name for p in clips.iterdir())[0])]) == 0
    assert f"threshold {det['threshold']:g} from the model" in capsys.readouterr().err
    with pytest.raises(DataError, match="at least 3"):
        one = tmp_path / "one"
        one.mkdir()
        shutil.copyfile(next(clips.iterdir()), one / "x.wav")
        build_custom(["happy"], one, tmp_path / "o2", noise_dir=shared_data / "background_noise")


def test_reversed_clips_are_the_clips_backwards(tmp_path, shared_data):
    """The `unknown` rows made from your own clips: the same samples in reverse order (16-bit
    wavs round-trip exactly), one file per clip."""
    from core.audio.wav import read_wav
    from core.train.custom import reversed_clips

    src = sorted((shared_data / "speech_commands_v0.01_bed_cat_happy" / "bed").glob("*.wav"))[:3]
    out = reversed_clips(src, tmp_path / "rev", 16000)
    assert [p.parent for p in out] == [tmp_path / "rev"] * 3 and len(set(out)) == 3
    for a, b in zip(src, out):
        x, y = read_wav(a, 16000)[0], read_wav(b, 16000)[0]
        assert len(x) > 8000 and x.std() > 0
        assert (y == x[::-1]).all()


def test_syllables_decide_which_words_are_cut_off_part_way(monkeypatch):
    words = {"happy": 2, "cat": 1, "bed": 1, "house": 1, "seven": 2, "zero": 2, "computer": 3, "tree": 1, "fire": 1}
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/sysdeps.sh)")
    assert {w: syllables(w) for w in words} == words  # espeak-ng's phonemes
    import core.data.speech.espeak as espeak

    monkeypatch.setattr(espeak, "which", lambda _name: None)  # no espeak-ng: the spelling
    assert {w: syllables(w) for w in words} == words


def test_partial_clips_keep_the_start_of_the_word_only(tmp_path, shared_data):
    """The `unknown` rows "ha-" of "happy": the samples up to a cut 30-65 % into the word's loud
    part as they were, faded out over 20 ms, then silence; one file per clip, seeded."""
    from core.audio.wav import read_wav

    sr = 16000
    burst = np.zeros(sr, np.float32)
    burst[4000:12000] = 0.5 * np.sin(np.arange(8000) * 0.3)
    assert word_extent(burst, 256) == (3840, 12032)  # the hops that hold the burst
    src = sorted((shared_data / "speech_commands_v0.01_bed_cat_happy" / "happy").glob("*.wav"))[:5]
    out = partial_clips(src, tmp_path / "cut", sr, seed=3)
    assert len(set(out)) == 5 and partial_clips(src, tmp_path / "again", sr, seed=3)[0].name == out[0].name
    for a, b in zip(src, out):
        x, y = read_wav(a, sr)[0], read_wav(b, sr)[0]
        first, end = word_extent(x, 256)
        cut = int(np.flatnonzero(y != x)[0])  # where the fade starts
        assert first + 0.3 * (end - first) - 1 <= cut <= first + 0.65 * (end - first) + 1
        assert len(y) == len(x) and not y[cut + int(0.02 * sr) + 1:].any()
        assert np.array_equal(y[:cut], x[:cut])
