"""core.data.curate: flags measured on real and planted clips, duplicates, the review order, and
moving/deleting clips with the lists (relative and absolute lines) and categories kept in step."""

from __future__ import annotations

import numpy as np
import pytest

from core.audio.wav import read_wav, write_wav
from core.data.curate import by_suspicion, delete_clip, find_duplicates, flag, inspect_clip, relabel_clip
from core.errors import AudioError, DataError

SR = 16000


@pytest.fixture
def clip(shared_data):
    x, _ = read_wav(shared_data / "ell_examples" / "seven.wav", SR)
    return x


def test_flags_of_planted_problems(tmp_path, clip):
    cases = {"clean": clip, "silent": np.zeros(SR, np.float32), "clipped": np.clip(clip * 30, -1, 1),
             "quiet": clip * 10 ** (-25 / 20), "short": clip[4000:8000], "long": np.tile(clip, 2),
             "noise": (np.random.default_rng(0).standard_normal(SR) * 0.05).astype(np.float32)}
    infos = {}
    for name, x in cases.items():
        write_wav(tmp_path / f"{name}.wav", x, SR)
        infos[name] = flag(inspect_clip(tmp_path / f"{name}.wav", "seven"))
    assert infos["clean"].flags == () and infos["clean"].words == 1
    assert 0.2 < infos["clean"].word_s < 0.9 and -35 < infos["clean"].level_db < -5
    assert infos["silent"].flags == ("silent",)
    assert "clipped" in infos["clipped"].flags and infos["clipped"].clipped_samples >= 3
    # 25 dB down: the peak (-41 dBFS) is not silence, the word (-51 dB) is below -45 dB
    assert infos["quiet"].flags == ("too quiet",)
    assert "too short" in infos["short"].flags and "too long" in infos["long"].flags
    assert infos["noise"].flags == ("no word",)  # steady noise holds nothing like a word
    order = [i.path.stem for i in by_suspicion(infos.values())]
    assert order[0] == "silent" and order[1] == "noise" and order[-1] == "clean"
    with pytest.raises(AudioError):
        (tmp_path / "bad.wav").write_bytes(b"RIFF")
        inspect_clip(tmp_path / "bad.wav", "seven")


def test_duplicates_are_all_but_the_first(tmp_path, clip):
    for name in ("a", "b", "c"):
        write_wav(tmp_path / f"{name}.wav", clip, SR)
    write_wav(tmp_path / "d.wav", clip * 0.5, SR)
    infos = [inspect_clip(tmp_path / f"{n}.wav", "seven") for n in "dcba"]
    assert find_duplicates(infos) == {tmp_path / "b.wav", tmp_path / "c.wav"}


def test_relabel_and_delete_keep_lists_and_categories(tmp_path, clip):
    root, lists = tmp_path / "data", tmp_path / "lists"
    for w in ("yes", "no"):
        (root / w).mkdir(parents=True)
        for i in range(2):
            write_wav(root / w / f"s{i}_nohash_0.wav", clip, SR)
    write_wav(root / "no" / "s9_nohash_0.wav", clip, SR)
    lists.mkdir()
    (lists / "training_list.txt").write_text("# made by hand\n../data/yes/s0_nohash_0.wav\n"
                                              f"{root / 'yes' / 's1_nohash_0.wav'}\n../data/no/s0_nohash_0.wav\n")
    (lists / "validation_list.txt").write_text("../data/no/s1_nohash_0.wav\n")
    (lists / "categories.txt").write_text("yes\nno\n")
    moved = relabel_clip(root / "yes" / "s1_nohash_0.wav", "maybe", list_dir=lists)
    assert moved == root / "maybe" / "s1_nohash_0.wav" and moved.is_file()
    # a name already taken in the new folder gets the next number
    again = relabel_clip(root / "no" / "s1_nohash_0.wav", "maybe", list_dir=lists)
    assert again == root / "maybe" / "s1_nohash_1.wav"
    delete_clip(root / "yes" / "s0_nohash_0.wav", list_dir=lists)
    assert not (root / "yes" / "s0_nohash_0.wav").exists()
    assert (lists / "training_list.txt").read_text() == "# made by hand\n../data/maybe/s1_nohash_0.wav\n" \
                                                         "../data/no/s0_nohash_0.wav\n"
    assert (lists / "validation_list.txt").read_text() == "../data/maybe/s1_nohash_1.wav\n"
    assert (lists / "categories.txt").read_text() == "yes\nno\nmaybe\n"
    assert relabel_clip(root / "no" / "s9_nohash_0.wav", "no") == root / "no" / "s9_nohash_0.wav"  # no move
    with pytest.raises(DataError):
        delete_clip(root / "yes" / "s0_nohash_0.wav")
    with pytest.raises(DataError):
        relabel_clip(root / "no" / "s0_nohash_0.wav", "_bad")
    assert not list(tmp_path.rglob(".*.tmp"))
