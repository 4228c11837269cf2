"""kws dataset: rows and ELL's padding rule, labels, format, SNR mixing, augmentation, bad files,
atomic output, workers."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import write_wav
from core.data.augment import AugmentConfig, NoiseBank, augment_copy, parse_range, power
from core.data.dataset import (
    Dataset,
    DatasetConfig,
    build_dataset,
    featurizer_info,
    load_dataset,
    plan_rows,
    save_dataset,
)
from core.errors import DataError
from core.features.featurizer import FeaturizerConfig, build_featurizer, featurize
from core.progress import Cancelled

ROOT = Path(__file__).resolve().parents[2]
SR, HOP = 16000, 512
CATS = ["background_noise", "no", "yes"]


@pytest.fixture(scope="module")
def feat():
    g = build_featurizer(FeaturizerConfig(sample_rate=SR, window_size=512, hop_length=HOP, n_filters=40))
    return g, featurizer_info(g)


def clip(frames: int, seed: int = 0, extra: int = 100) -> np.ndarray:
    """Noisy tone of `frames` whole hops plus a partial hop (which the featurizer drops)."""
    rng = np.random.default_rng(seed)
    n = frames * HOP + extra
    t = np.arange(n) / SR
    x = 0.2 * np.sin(2 * np.pi * (300 + 50 * seed) * t) + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def white_bank(seconds=3.0, seed=1) -> NoiseBank:
    x = (0.05 * np.random.default_rng(seed).standard_normal(int(SR * seconds))).astype(np.float32)
    return NoiseBank(("white",), (x,))


@pytest.mark.parametrize("n, rows, pad", [
    (80, 2, 0),   # two full rows, nothing left
    (90, 2, 0),   # 10 frames left: not more than a quarter window -> dropped
    (91, 3, 29),  # 11 left: padded to a third row
    (5, 1, 35),   # no row at all: always padded
    (40, 1, 0),
])
def test_plan_rows_ell_padding_rule(n, rows, pad):
    starts, p = plan_rows(n, 40, 40)
    assert len(starts) + (1 if p else 0) == rows and p == pad


def test_plan_rows_overlapping():
    assert plan_rows(45, 40, 10) == ([0], 5)  # ELL: after one row 35 frames remain (> 10) -> pad 5
    assert plan_rows(60, 40, 10) == ([0, 10, 20], 10)  # 30 frames remain after three rows -> a fourth


def _simulate_ell(n, w, s):
    buf, count, out = list(range(n)), 0, []
    while len(buf) >= w:
        out.append(buf[:w])
        buf = buf[s:]
        count += 1
    pad = 0
    while len(buf) < w and (len(buf) > w / 4 or count == 0):
        buf.append(-1)
        pad += 1
    if len(buf) == w and pad:
        out.append(buf)
    return len(out), pad


@pytest.mark.parametrize("n", [1, 9, 10, 11, 39, 40, 41, 49, 50, 51, 60, 79, 80, 81, 91, 130])
@pytest.mark.parametrize("w, s", [(40, 40), (40, 10), (40, 20), (8, 3)])
def test_plan_rows_matches_ell_loop(n, w, s):
    starts, pad = plan_rows(n, w, s)
    assert (len(starts) + (1 if pad else 0), pad) == _simulate_ell(n, w, s)


def write_clips(folder: Path, spec: dict[str, list[int]]) -> list[tuple[Path, str]]:
    entries = []
    for label, lengths in spec.items():
        for i, frames in enumerate(lengths):
            p = folder / label / f"s{i}_nohash_0.wav"
            write_wav(p, clip(frames, seed=i), SR)
            entries.append((p, label))
    return entries


def test_rows_labels_and_padding_content(tmp_path, feat):
    g, fmeta = feat
    entries = write_clips(tmp_path, {"no": [80, 90], "yes": [91, 5]})
    res = build_dataset(entries, CATS, g, fmeta)
    ds = res.dataset
    assert ds.features.shape == (2 + 2 + 3 + 1, 40, 40) and ds.features.dtype == np.float32
    assert ds.labels.tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert ds.counts() == {"background_noise": 0, "no": 4, "yes": 4}
    # full rows are the featurizer's frames exactly (read back from the 16-bit wav)
    from core.audio.wav import read_wav

    frames = featurize(g, read_wav(entries[2][0], SR)[0])
    assert frames.shape[0] == 91
    np.testing.assert_array_equal(ds.features[4], frames[:40])
    np.testing.assert_array_equal(ds.features[5], frames[40:80])
    # trailing row: the 11 real frames, then last frame + noise of about half its std
    tail = ds.features[6]
    np.testing.assert_array_equal(tail[:11], frames[80:91])
    dev = tail[11:] - frames[90]
    assert 0.3 < dev.std() / frames[90].std() < 0.7 and abs(dev.mean()) < 0.2 * frames[90].std()
    assert ds.meta["window_frames"] == 40 and ds.meta["counts"]["yes"] == 4


def test_save_load_roundtrip_without_pickle(tmp_path, feat):
    g, fmeta = feat
    ds = build_dataset(write_clips(tmp_path, {"yes": [40]}), CATS, g, fmeta).dataset
    out = save_dataset(tmp_path / "d.npz", ds)
    with np.load(out, allow_pickle=False) as z:
        assert sorted(z.files) == ["categories", "features", "featurizer", "labels", "meta"]
        assert z["labels"].dtype == np.int64 and z["featurizer"].ndim == 0
        assert z["categories"].dtype.kind == "U" and z["features"].dtype == np.float32
    back = load_dataset(out)
    np.testing.assert_array_equal(back.features, ds.features)
    assert back.categories == tuple(CATS) and back.featurizer["featurizer"]["n_filters"] == 40
    assert back.featurizer["sample_rate"] == SR and back.featurizer["hop_length"] == HOP
    assert back.meta["format"] == "kwsgui-dataset" and len(back.subset([0])) == 1


def test_load_rejects_bad_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(junk)
    np.savez(tmp_path / "partial.npz", features=np.zeros((1, 2, 3), np.float32))
    with pytest.raises(DataError, match="missing labels"):
        load_dataset(tmp_path / "partial.npz")
    obj = np.empty(1, dtype=object)
    obj[0] = {"x": 1}
    np.savez(tmp_path / "pickled.npz", features=np.zeros((1, 2, 3), np.float32), labels=np.zeros(1, np.int64),
             categories=obj, featurizer=np.array("{}"), meta=np.array("{}"))
    with pytest.raises(DataError, match="pickle"):
        load_dataset(tmp_path / "pickled.npz")
    np.savez(tmp_path / "range.npz", features=np.zeros((1, 2, 3), np.float32), labels=np.array([5]),
             categories=np.array(["a"]), featurizer=np.array("{}"), meta=np.array("{}"))
    with pytest.raises(DataError, match="index the 1 categories"):
        load_dataset(tmp_path / "range.npz")
    with pytest.raises(DataError, match="no such dataset"):
        load_dataset(tmp_path / "absent.npz")


@pytest.mark.parametrize("snr_db", [-5.0, 3.0, 12.5, 30.0])
def test_noise_is_mixed_at_the_requested_snr(snr_db):
    x = clip(31)
    bank = white_bank()
    cfg = AugmentConfig(noise_fraction=1.0, snr_db=(snr_db, snr_db))
    a = augment_copy(x, np.random.default_rng(0), cfg, bank, sample_rate=SR, tail=2000)
    noise = a.samples.astype(np.float64) - x
    measured = 10 * np.log10(power(x) / power(noise))
    assert abs(measured - snr_db) < 0.5 and a.snr_db == snr_db
    # the padding tail continues the same noise at the same gain
    assert len(a.noise_tail) == 2000
    assert abs(10 * np.log10(power(a.noise_tail) / power(noise))) < 1.0


def test_snr_range_and_fraction_with_real_noise(shared_data):
    bank = NoiseBank.load(shared_data / "background_noise", SR)
    assert len(bank.files) == 6
    x = clip(31, seed=3)
    rng = np.random.default_rng(7)
    cfg = AugmentConfig(noise_fraction=0.3, snr_db=parse_range("0,20", "snr"))
    got = [augment_copy(x, rng, cfg, bank, sample_rate=SR) for _ in range(200)]
    noisy = [a for a in got if a.snr_db is not None]
    assert 0.2 < len(noisy) / len(got) < 0.4
    for a in noisy:
        assert 0 <= a.snr_db <= 20
        measured = 10 * np.log10(power(x) / power(a.samples.astype(np.float64) - x))
        assert abs(measured - a.snr_db) < 0.5
    clean = [a for a in got if a.snr_db is None]
    assert all(np.array_equal(a.samples, x) for a in clean)


def test_shift_gain_speed():
    rng = np.random.default_rng(0)
    imp = np.zeros(8000, np.float32)
    imp[4000] = 0.5
    shifts = {int(np.argmax(augment_copy(imp, rng, AugmentConfig(time_shift_ms=10), sample_rate=SR).samples)) - 4000
              for _ in range(30)}
    assert len(shifts) > 5 and all(abs(s) <= 160 for s in shifts)
    g = augment_copy(imp, rng, AugmentConfig(gain_db=(6.0206, 6.0206)), sample_rate=SR).samples
    assert abs(g.max() - 1.0) < 1e-3
    tone = (0.3 * np.sin(2 * np.pi * 500 * np.arange(SR) / SR)).astype(np.float32)
    fast = augment_copy(tone, rng, AugmentConfig(speed=(1.1, 1.1)), sample_rate=SR).samples
    assert abs(len(fast) - SR / 1.1) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(fast))) * SR / len(fast)
    assert abs(peak_hz - 550) < 3
    with pytest.raises(ValueError, match="speed"):
        AugmentConfig(speed=(0.1, 1.0))
    with pytest.raises(ValueError, match="snr"):
        parse_range("20,5", "--snr-db")


def test_augment_copies_background_rows_and_determinism(tmp_path, feat):
    g, fmeta = feat
    entries = write_clips(tmp_path, {"no": [31, 31, 31], "yes": [31, 31]})
    bank = white_bank()
    aug = AugmentConfig(noise_fraction=0.5, snr_db=(5, 15), time_shift_ms=50, copies=2)
    cfg = DatasetConfig(background_rows=4, seed=3)
    one = build_dataset(entries, CATS, g, fmeta, config=cfg, augment_config=aug, noise=bank).dataset
    clean = build_dataset(entries, CATS, g, fmeta, config=DatasetConfig(seed=3)).dataset
    assert len(one) == 5 * 3 + 4
    assert one.labels.tolist()[-4:] == [0, 0, 0, 0] and one.counts()["no"] == 9
    np.testing.assert_array_equal(one.features[0], clean.features[0])  # copy 0 is the clean clip
    assert not np.array_equal(one.features[1], clean.features[0])
    two = build_dataset(entries, CATS, g, fmeta, config=cfg, augment_config=aug, noise=bank, jobs=2).dataset
    np.testing.assert_array_equal(one.features, two.features)  # same seed, any number of workers
    other = build_dataset(entries, CATS, g, fmeta, config=DatasetConfig(background_rows=4, seed=4),
                          augment_config=aug, noise=bank).dataset
    assert not np.array_equal(one.features, other.features)
    assert one.meta["background"]["label"] == "background_noise" and one.meta["augment"]["copies"] == 2
    with pytest.raises(DataError, match="background class"):
        build_dataset(entries, ["no", "yes"], g, fmeta, config=cfg, noise=bank)
    with pytest.raises(DataError, match="not in the categories"):
        build_dataset(entries, ["no"], g, fmeta)


def test_bad_files_are_skipped_and_reported(tmp_path, feat):
    g, fmeta = feat
    entries = write_clips(tmp_path, {"no": [31], "yes": [31]})
    corrupt = tmp_path / "yes" / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    short = tmp_path / "no" / "short.wav"
    write_wav(short, np.zeros(100, np.float32), SR)
    entries += [(tmp_path / "yes" / "missing.wav", "yes"), (corrupt, "yes"), (short, "no")]
    res = build_dataset(entries, CATS, g, fmeta, jobs=2)
    assert len(res.dataset) == 2
    assert [Path(p).name for p, _ in res.skipped] == ["missing.wav", "corrupt.wav", "short.wav"]
    assert all(Path(p).name in why for p, why in res.skipped)
    assert "too short" in res.skipped[2][1]
    assert [s["path"] for s in res.dataset.meta["skipped"]] == [p for p, _ in res.skipped]
    with pytest.raises(DataError, match="all 3 files were skipped"):
        build_dataset(entries[2:], CATS, g, fmeta)


def test_output_is_atomic(tmp_path, feat, monkeypatch):
    g, fmeta = feat
    entries = write_clips(tmp_path / "a", {"yes": [31, 31, 31, 31]})
    out = tmp_path / "out" / "d.npz"
    first = build_dataset(entries, CATS, g, fmeta).dataset
    save_dataset(out, first)
    before = out.read_bytes()
    # cancelled half way: Cancelled, nothing written
    stop = threading.Event()

    def progress(done, total):
        if done == 2:
            stop.set()

    with pytest.raises(Cancelled):
        build_dataset(entries, CATS, g, fmeta, progress=progress, cancel=stop)
    # a failure in the middle of writing: the old file is intact, no temporary file is left
    import core.data.dataset as mod

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mod.np, "savez", broken_savez)
    with pytest.raises(DataError, match="No space left"):
        save_dataset(out, first)
    assert out.read_bytes() == before and os.listdir(out.parent) == ["d.npz"]


def kws(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_on_lists_with_a_bad_file(tmp_path):
    write_clips(tmp_path / "audio", {"no": [31, 31, 31, 31, 31], "yes": [31, 31, 31, 31, 31]})
    (tmp_path / "audio" / "yes" / "zz_nohash_0.wav").write_bytes(b"garbage")
    assert kws("featurizer", "-o", tmp_path / "f.kwm", "--filterbank-size", "40").returncode == 0
    out = kws("lists", tmp_path / "audio", "-o", tmp_path / "lists", "--validation-percent", "30",
              "--testing-percent", "30", "--background-class", "background_noise")
    assert out.returncode == 0, out.stderr
    noise = tmp_path / "noise"
    write_wav(noise / "white.wav", white_bank().signals[0], SR)
    out = kws("dataset", "--lists", tmp_path / "lists", "-f", tmp_path / "f.kwm", "-o", tmp_path / "ds",
              "--noise-dir", noise, "--noise-fraction", "0.5", "--background-rows", "3", "--jobs", "2")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    train = load_dataset(tmp_path / "ds" / "training.npz")
    assert train.categories == ("background_noise", "no", "yes") and train.counts()["background_noise"] == 3
    splits = [load_dataset(p) for p in sorted((tmp_path / "ds").glob("*.npz"))]
    files = sum(d.meta["files"] for d in splits)
    skipped = [s for d in splits for s in d.meta["skipped"]]
    assert files == 11 and len(skipped) == 1 and "zz_nohash_0.wav" in skipped[0]["path"]
    assert "skipped 1" in out.stderr and "zz_nohash_0.wav" in out.stderr
    assert all(d.meta["augment"]["noise_fraction"] == 0 for d in splits if d.meta["list_file"].endswith(
        ("validation_list.txt", "testing_list.txt")))


def test_ell_featurizer_dataset(shared_data, tmp_path):
    d = shared_data / "ell_devkit_model"
    lst = tmp_path / "list.txt"
    sample = shared_data / "speech_commands_v0.01_sample"
    lst.write_text("".join(f"{p.absolute()}\n" for p in sorted(sample.glob("[sy]e*/*.wav"))))  # seven, yes
    out = kws("dataset", "-l", lst, "-f", d / "featurizer.ell", "-cat", d / "categories.txt",
              "-o", tmp_path / "e.npz")
    assert out.returncode == 0, out.stderr
    ds = load_dataset(tmp_path / "e.npz")
    assert ds.features.shape == (20, 40, 80)  # 1 s clips -> 31 frames -> one padded row each
    assert ds.featurizer["sample_rate"] == 16000 and ds.featurizer["hop_length"] == 512
    assert ds.categories[0] == "background_noise" and len(ds.categories) == 31


def test_dataset_model_is_a_frozen_dataclass():
    ds = Dataset(np.zeros((1, 2, 3), np.float32), np.zeros(1, np.int64), ("a",), {}, {})
    with pytest.raises(AttributeError):
        ds.labels = None
    with pytest.raises(ValueError, match="int64"):
        Dataset(np.zeros((1, 2, 3), np.float32), np.zeros(2, np.int64), ("a",), {}, {})
