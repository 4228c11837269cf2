"""kws lists: speaker split, a dataset's own lists, bad list, caps, read-only data, list paths."""

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import write_wav
from core.data.lists import ListsConfig, make_lists, read_list, speaker_id, which_split, write_lists
from core.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def kws(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def make_tree(root: Path, words=("no", "yes", "up"), speakers=40, takes=2) -> list[Path]:
    """Speech Commands layout with tiny wavs; plus a _background_noise_ folder that is no word."""
    tone = (0.1 * np.sin(np.arange(400) / 5.0)).astype(np.float32)
    files = []
    for w in words:
        for s in range(speakers):
            for t in range(takes):
                p = root / w / f"{s:08x}_nohash_{t}.wav"
                write_wav(p, tone, 16000)
                files.append(p)
    write_wav(root / "_background_noise_" / "white.wav", tone, 16000)
    return files


def split_of(lists) -> dict[Path, str]:
    return {p: s for s in ("training", "validation", "testing") for p in getattr(lists, s)}


def test_speaker_id():
    assert speaker_id("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    assert speaker_id("espeak-en-us-klatt3_nohash_12.wav") == "espeak-en-us-klatt3"
    assert speaker_id("take1.wav") == "take1"


def test_hash_split_keeps_each_speaker_in_one_split(tmp_path):
    files = make_tree(tmp_path / "audio")
    lists = make_lists([tmp_path / "audio"])
    assert lists.categories == ("no", "up", "yes")  # sorted, _background_noise_ is not a word
    where = split_of(lists)
    assert set(where) == set(files)  # every file once
    by_speaker = defaultdict(set)
    for p, s in where.items():
        by_speaker[speaker_id(p.name)].add(s)
    assert all(len(s) == 1 for s in by_speaker.values())
    n = {s: sum(v == s for v in where.values()) for s in ("training", "validation", "testing")}
    assert n["validation"] > 0 and n["testing"] > 0 and n["training"] > 0.6 * len(files)
    # same speaker -> same split in every word folder
    assert {which_split(p.name, 10, 10) for p in files if p.name.startswith("00000001_")} == \
        {where[p] for p in files if p.name.startswith("00000001_")}


def test_hash_split_reproduces_the_speech_commands_lists(shared_data):
    """v0.01's own testing/validation lists were made by the same hash: we must agree on every file."""
    sample = shared_data / "speech_commands_v0.01_sample"
    listed = {}
    for split in ("testing", "validation"):
        for ln in (sample / f"{split}_list.txt").read_text().split():
            listed[ln] = split
    wavs = sorted(sample.glob("*/*.wav"))
    assert len(wavs) == 300
    for w in wavs:
        rel = f"{w.parent.name}/{w.name}"
        assert which_split(w.name, 10, 10) == listed.get(rel, "training"), rel


def test_dataset_lists_are_honoured_and_missing_files_dropped(tmp_path):
    audio = tmp_path / "audio"
    make_tree(audio, speakers=6, takes=1)
    # the dataset's own lists name two present files and one that is not in this copy
    (audio / "testing_list.txt").write_text("yes/00000001_nohash_0.wav\nno/ffffffff_nohash_0.wav\n")
    (audio / "validation_list.txt").write_text("up/00000002_nohash_0.wav\n")
    lists = make_lists([audio])
    assert [p.relative_to(audio).as_posix() for p in lists.testing] == ["yes/00000001_nohash_0.wav"]
    assert [p.relative_to(audio).as_posix() for p in lists.validation] == ["up/00000002_nohash_0.wav"]
    assert len(lists.training) == 18 - 2
    # written into the data folder itself: ELL-style lines, and the dataset's lists survive as .orig
    write_lists(lists, audio)
    assert (audio / "training_list.txt").read_text().splitlines()[0] == "no/00000000_nohash_0.wav"
    assert (audio / "testing_list.orig.txt").read_text().count("\n") == 2
    assert (audio / "testing_list.txt").read_text() == "yes/00000001_nohash_0.wav\n"
    again = make_lists([audio])  # reads the .orig lists: same result
    assert again.testing == lists.testing and again.training == lists.training
    (audio / "validation_list.txt").unlink()
    (audio / "validation_list.orig.txt").unlink()
    with pytest.raises(DataError, match="validation_list.txt"):
        make_lists([audio])


def test_bad_list_removes_files_from_every_split(tmp_path):
    audio = tmp_path / "audio"
    files = make_tree(audio, speakers=30, takes=1)
    lists = make_lists([audio])
    victims = [lists.training[0], lists.validation[0], lists.testing[0]]
    bad = tmp_path / "elsewhere" / "bad.txt"  # not inside the audio folder: the path as given is used
    bad.parent.mkdir()
    bad.write_text(f"{victims[0].relative_to(audio).as_posix()}\n{victims[1].relative_to(audio).as_posix()}\n"
                   f"{victims[2].absolute()}\nnot/present.wav\n")
    cleaned = make_lists([audio], ListsConfig(bad_list=str(bad)))
    assert cleaned.bad_removed == 3
    assert not set(victims) & set(split_of(cleaned))
    assert len(split_of(cleaned)) == len(files) - 3
    with pytest.raises(DataError, match="bad list not found"):
        make_lists([audio], ListsConfig(bad_list=str(tmp_path / "nope.txt")))


def test_cap_per_word_is_seeded_and_only_for_training(tmp_path):
    audio = tmp_path / "audio"
    make_tree(audio, speakers=20, takes=2)
    full = make_lists([audio])
    a = make_lists([audio], ListsConfig(max_files_per_dir=5, seed=1))
    b = make_lists([audio], ListsConfig(max_files_per_dir=5, seed=1))
    c = make_lists([audio], ListsConfig(max_files_per_dir=5, seed=2))
    per_word = defaultdict(int)
    for p in a.training:
        per_word[p.parent.name] += 1
    assert dict(per_word) == {"no": 5, "up": 5, "yes": 5}
    assert set(a.training) <= set(full.training)
    assert a.training == b.training and a.training != c.training
    assert a.validation == full.validation and a.testing == full.testing
    assert set(a.capped) == {"no", "up", "yes"}


def test_lists_elsewhere_resolve_and_mix_two_folders(tmp_path):
    real, synth = tmp_path / "real", tmp_path / "synth"
    make_tree(real, words=("no", "yes"), speakers=10, takes=1)
    make_tree(synth, words=("yes", "zero"), speakers=10, takes=1)
    out = kws("lists", real, synth, "-o", tmp_path / "lists", "--background-class", "background_noise")
    assert out.returncode == 0, out.stderr
    cats = (tmp_path / "lists" / "categories.txt").read_text().split()
    assert cats == ["background_noise", "no", "yes", "zero"]
    entries = [e for s in ("training", "validation", "testing")
               for e in read_list(tmp_path / "lists" / f"{s}_list.txt")]
    assert len(entries) == 40 and all(e.path.is_file() for e in entries)
    assert {e.label for e in entries} == {"no", "yes", "zero"}
    first = (tmp_path / "lists" / "training_list.txt").read_text().splitlines()[0]
    assert first.startswith("../") and not os.path.isabs(first)
    # several folders and no -o: refuse rather than guess
    out = kws("lists", real, synth)
    assert out.returncode == 2 and "-o" in out.stderr


def test_read_only_data_folder_is_never_written(tmp_path):
    audio = tmp_path / "audio"
    make_tree(audio, speakers=3, takes=1)
    audio.chmod(0o555)
    try:
        out = kws("lists", audio, "--in-place")
        assert out.returncode == 2
        assert "not writable" in out.stderr and "-o" in out.stderr and "Traceback" not in out.stderr
        assert not (audio / "training_list.txt").exists()
        out = kws("lists", audio, "-o", tmp_path / "out")
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "out" / "training_list.txt").is_file()
        assert sorted(p.name for p in audio.iterdir()) == ["_background_noise_", "no", "up", "yes"]
    finally:
        audio.chmod(0o755)


def test_sample_dataset_lists(shared_data, tmp_path):
    sample = shared_data / "speech_commands_v0.01_sample"
    out = kws("lists", sample, "-o", tmp_path, "--bad-list", shared_data / "ell_examples" / "bad_list.txt")
    assert out.returncode == 0, out.stderr
    counts = {s: len(read_list(tmp_path / f"{s}_list.txt")) for s in ("training", "validation", "testing")}
    assert sum(counts.values()) + int(out.stdout.split("removed ")[1].split()[0]) == 300
    testing = {f"{e.label}/{e.path.name}" for e in read_list(tmp_path / "testing_list.txt")}
    assert testing <= set((sample / "testing_list.txt").read_text().split())
    assert len((tmp_path / "categories.txt").read_text().split()) == 30
