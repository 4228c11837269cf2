"""Realistic augmentation (core.data.augment) on real recordings: reverb, VTLP, band limits,
microphone colouring, babble, SNR, determinism, and the DevKit still hearing the words."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import signal

from core.audio.wav import read_wav
from core.data.augment import (
    AugmentConfig,
    NoiseBank,
    RoomBank,
    SpeechPool,
    augment,
    augment_copy,
    butterworth_sos,
    measure_rt60,
    peaking_sos,
    power,
    vtlp,
)

SR = 16000
WORDS = ("seven", "bed", "happy", "yes", "no", "cat", "four", "two")


@pytest.fixture(scope="module")
def real(shared_data):
    """One real clip per word (Speech Commands v0.01 sample), float32 at 16 kHz."""
    sample = shared_data / "speech_commands_v0.01_sample"
    return {w: read_wav(sorted((sample / w).glob("*.wav"))[0], SR)[0] for w in WORDS}


@pytest.fixture(scope="module")
def rooms():
    """Three rooms, RT60 designed in 0.3-0.7 s (0.2 s of CPU)."""
    return RoomBank.simulate(AugmentConfig(reverb_fraction=1.0, rt60_s=(0.3, 0.7), rooms=3), SR, seed=0)


def snr_db(speech: np.ndarray, added: np.ndarray) -> float:
    return 10 * math.log10(power(speech) / power(added))


# ---------------------------------------------------------------- configuration

def test_config_validation_names_the_value_and_survives_json():
    for kwargs, word in [({"reverb_fraction": 1.5}, "reverb fraction"), ({"pitch_fraction": -0.1}, "pitch fraction"),
                         ({"babble_fraction": 2}, "babble fraction"), ({"eq_fraction": "x"}, "eq fraction"),
                         ({"rt60_s": (0.05, 0.5)}, "rt60 s"), ({"rt60_s": (0.8, 0.3)}, "rt60_s"),
                         ({"room_m": (1.0, 5.0)}, "room m"), ({"pitch_factor": (0.5, 1.0)}, "pitch factor"),
                         ({"low_cut_hz": (100.0, 3500.0), "high_cut_hz": (3000.0, 4000.0)}, "low cut"),
                         ({"eq_gain_db": (-30.0, 0.0)}, "eq gain db"), ({"eq_bands": 0}, "eq bands"),
                         ({"babble_talkers": (0, 3)}, "babble talkers"), ({"babble_talkers": (1.5, 3)}, "whole"),
                         ({"rooms": 0}, "rooms"), ({"speed": (0.1, 1.0)}, "speed")]:
        with pytest.raises(ValueError, match=word):
            AugmentConfig(**kwargs)
    cfg = AugmentConfig(reverb_fraction=0.3, rt60_s=(0.25, 0.9), babble_talkers=(2, 4), eq_gain_db=(-3, 3), copies=2)
    back = AugmentConfig(**json.loads(json.dumps(cfg.to_dict())))  # as the dataset's meta stores it
    assert back == cfg and back.active and not AugmentConfig().active


def test_kws_dataset_options_reach_the_config():
    import argparse

    from core.commands.dataset import REALISTIC, add_arguments, augment_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    base = ["-l", "list.txt", "-f", "feat.kwm", "-o", "out.npz"]
    assert augment_config(p.parse_args(base)) == AugmentConfig()  # defaults come from AugmentConfig
    args = p.parse_args(base + ["--reverb-fraction", "0.5", "--rt60", "0.3,0.9", "--rooms", "8", "--pitch-factor",
                                "0.92,1.08", "--babble-talkers", "2,3", "--eq-gain-db=-4,4", "--telephone-fraction",
                                "0.1"])
    cfg = augment_config(args)
    assert (cfg.reverb_fraction, cfg.rt60_s, cfg.rooms, cfg.pitch_factor, cfg.babble_talkers, cfg.eq_gain_db,
            cfg.telephone_fraction) == (0.5, (0.3, 0.9), 8, (0.92, 1.08), (2, 3), (-4.0, 4.0), 0.1)
    assert {field for _, field, _, _ in REALISTIC} == set(AugmentConfig.__dataclass_fields__) - {
        "noise_fraction", "snr_db", "time_shift_ms", "gain_db", "speed", "copies"}  # every new field has an option
    with pytest.raises(ValueError, match="rt60"):
        augment_config(p.parse_args(base + ["--rt60", "0.9,0.3"]))


# ---------------------------------------------------------------- filters against the libraries

@pytest.mark.parametrize("kind,cutoff", [("highpass", 300.0), ("lowpass", 3400.0), ("highpass", 55.0),
                                         ("lowpass", 7000.0)])
def test_butterworth_biquads_equal_scipy_butter(kind, cutoff):
    ours = butterworth_sos(4, cutoff, kind, SR)
    ref = signal.butter(4, cutoff, kind, fs=SR, output="sos")
    w, h_ours = signal.sosfreqz(ours, worN=2048, fs=SR)
    _, h_ref = signal.sosfreqz(ref, worN=2048, fs=SR)
    # both are the bilinear transform of the same analog prototype in float64: they differ by
    # rounding of a few operations per section, ~1e-15 relative; 1e-9 leaves room for the
    # poles near z = 1 of a 55 Hz high-pass, where |H| itself is ~1e-15 at DC
    assert np.max(np.abs(h_ours - h_ref)) < 1e-9


def test_peaking_filter_gain_at_centre_and_unity_far_away():
    for centre, gain, q in [(1000.0, 6.0, 1.0), (250.0, -8.0, 2.5), (5000.0, 3.0, 0.7)]:
        _, h = signal.sosfreqz(peaking_sos(centre, gain, q, SR), worN=[0.0, centre, SR / 2], fs=SR)
        db = 20 * np.log10(np.abs(h))
        # the cookbook biquad is exactly 0 dB at DC and Nyquist and `gain` at the centre (float64)
        np.testing.assert_allclose(db, [0.0, gain, 0.0], atol=1e-9)


# ---------------------------------------------------------------- band limits on real audio

def band_db(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Power ratio y/x in dB over [lo, hi) Hz (Welch, 1024-point Hann)."""
    f, px = signal.welch(np.asarray(x, np.float64), SR, nperseg=1024)
    _, py = signal.welch(np.asarray(y, np.float64), SR, nperseg=1024)
    m = (f >= lo) & (f < hi)
    return 10 * math.log10(py[m].sum() / px[m].sum())


@pytest.mark.shared
def test_band_limits_and_telephone_band_remove_energy_outside_the_band(real):
    # A 4th-order Butterworth is 10 log10(1 + 2^8) = 24.1 dB down one octave past its corner and
    # falls 24 dB per octave beyond; Hann-window leakage in Welch's estimate is below -60 dB a few
    # bins from the passband, so a band wholly past one octave must measure >= 24 dB down (less
    # 1 dB for leakage and the estimate's variance). In the passband far from both corners the
    # response is within 0.1 dB; 0.5 dB allows for the same estimate error.
    x = real["seven"]
    band = AugmentConfig(band_fraction=1.0, low_cut_hz=(300.0, 300.0), high_cut_hz=(2500.0, 2500.0))
    y = augment(x, np.random.default_rng(0), band, sample_rate=SR)
    assert band_db(x, y, 20, 150) < -23 and band_db(x, y, 5000, 8000) < -23
    assert abs(band_db(x, y, 700, 1200)) < 0.5
    phone = AugmentConfig(telephone_fraction=1.0)
    y = augment(x, np.random.default_rng(0), phone, sample_rate=SR)
    assert band_db(x, y, 20, 150) < -23 and band_db(x, y, 6800, 8000) < -23
    assert abs(band_db(x, y, 700, 1700)) < 0.5
    # microphone EQ: random peaking filters change the spectrum but not beyond their gain range
    eq = AugmentConfig(eq_fraction=1.0, eq_gain_db=(-6.0, 6.0), eq_bands=3)
    a = augment_copy(x, np.random.default_rng(3), eq, sample_rate=SR)
    assert a.steps == ("eq",)
    per_band = [band_db(x, a.samples, lo, lo * 1.25) for lo in (200, 400, 800, 1600, 3200)]
    assert max(abs(v) for v in per_band) > 0.5 and max(abs(v) for v in per_band) < 18.5  # 3 x 6 dB + estimate


# ---------------------------------------------------------------- VTLP / pitch

def speech_spectrum_shift(x: np.ndarray, y: np.ndarray) -> float:
    """The frequency factor that best maps x's spectrum onto y's: the lag of the cross-correlation
    of their speech frames' log spectra on a log-frequency axis (100-4000 Hz), with the slow
    spectral trend removed so the harmonics and formants decide."""
    def logspec(z, frames):
        f, _, s = signal.stft(np.asarray(z, np.float64), SR, nperseg=2048, noverlap=2048 - 256)
        p = (np.abs(s) ** 2)[:, frames].mean(axis=1)
        grid = np.exp(np.linspace(math.log(100), math.log(4000), 4000))
        v = np.log(np.interp(grid, f, p) + 1e-20)
        v = v - np.convolve(v, np.ones(301) / 301, mode="same")
        return v[301:-301]

    _, _, s = signal.stft(np.asarray(x, np.float64), SR, nperseg=2048, noverlap=2048 - 256)
    e = (np.abs(s) ** 2).sum(axis=0)
    frames = e >= e.max() / 10  # within 10 dB of the loudest frame: the word, not the silence
    a, b = logspec(x, frames), logspec(y, frames)
    step = math.log(40) / 3999
    lags = np.arange(-250, 251)
    c = [np.dot(a[max(0, -k): len(a) - max(0, k)], b[max(0, k): len(b) - max(0, -k)]) / (len(a) - abs(k))
         for k in lags]
    return math.exp(lags[int(np.argmax(c))] * step)


@pytest.mark.shared
@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_vtlp_moves_harmonics_and_formants_by_the_factor_like_librosa(real, alpha):
    librosa = pytest.importorskip("librosa")
    for word in WORDS:
        x = real[word]
        y = vtlp(x, alpha, SR)
        assert len(y) == len(x) and y.dtype == np.float32
        assert abs(power(y) / power(x) - 1) < 1e-5  # the level is kept (float32 rounding of the sums)
        # the log-frequency grid steps 0.09 %; harmonics are resolved to one 7.8 Hz bin, so a 1 %
        # error would move the tens of harmonics below 4 kHz by more than a bin: the peak is within 1 %
        assert abs(speech_spectrum_shift(x, y) / alpha - 1) < 0.01, word
        if word in WORDS[:3]:  # the peer, librosa's pitch_shift (phase vocoder + resampling)
            ref = librosa.effects.pitch_shift(x, sr=SR, n_steps=12 * math.log2(alpha))
            assert abs(speech_spectrum_shift(x, ref) / alpha - 1) < 0.01, word
    # no warp gives the clip back: the phase is re-integrated in float32 over ~130 frames
    # (each step wrapped to +-pi, ~1e-7 relative), so a few 1e-4 of full scale at most
    x = real["bed"]
    assert np.max(np.abs(vtlp(x, 1.0 + 1e-7, SR) - x)) < 5e-3 * np.max(np.abs(x))


# ---------------------------------------------------------------- reverb

def test_rt60_estimator_on_an_exact_exponential_decay():
    rng = np.random.default_rng(0)
    for rt60 in (0.25, 0.8):
        t = np.arange(int(1.5 * rt60 * SR)) / SR
        h = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60)  # energy falls 60 dB in rt60
        # Schroeder's backward integral of a noise decay fluctuates by ~1/sqrt(samples in the
        # -5..-25 dB stretch) (thousands): a few % at most
        assert abs(measure_rt60(h, SR) / rt60 - 1) < 0.05


@pytest.mark.shared
def test_rooms_have_the_rt60_range_and_reverb_lengthens_the_decay(real, rooms):
    pra = pytest.importorskip("pyroomacoustics")
    assert len(rooms) == 3 and rooms.summary()["rooms"] == 3
    for h, measured in zip(rooms.rirs, rooms.rt60_measured_s):
        assert abs(np.sum(h.astype(np.float64) ** 2) - 1) < 1e-5  # unit energy (float32 taps)
        assert np.argmax(np.abs(h)) <= 40  # the direct path leads (half the fractional-delay filter)
        # Sabine's formula, which sets the walls' absorption, holds for a diffuse field; with 10 %
        # scattering the simulated field is nearly diffuse and its decay lies within ~10 % of it,
        # so 20 % around the requested range
        assert 0.8 * 0.3 <= measured <= 1.2 * 0.7
        # our Schroeder T20 fit agrees with the library's (the same curve, a fit vs two points)
        assert abs(measured / pra.experimental.measure_rt60(h, fs=SR, decay_db=20) - 1) < 0.02
    long_room, short_room = int(np.argmax(rooms.rt60_measured_s)), int(np.argmin(rooms.rt60_measured_s))
    cfg = AugmentConfig(reverb_fraction=1.0)
    for word in ("seven", "bed", "yes", "cat"):
        x = real[word]
        padded = np.concatenate([x, np.zeros(SR, np.float32)])  # one second of silence after the clip
        tails = {}
        for seed in range(12):
            a = augment_copy(padded, np.random.default_rng(seed), cfg, sample_rate=SR, rooms=rooms)
            assert a.steps == ("reverb",) and len(a.samples) == len(padded)
            tail = a.samples[len(x):].astype(np.float64)
            assert np.sum(tail ** 2) > 0  # the dry clip has exactly none there
            tails.setdefault(a.room, measure_rt60(tail, SR))
        # the tail decays at the room's rate: longer room, longer tail, for every clip
        assert {long_room, short_room} <= tails.keys() and tails[long_room] > tails[short_room], word


# ---------------------------------------------------------------- SNR: babble and noise

@pytest.mark.shared
@pytest.mark.parametrize("target", [0.0, 7.5, 20.0])
def test_babble_and_noise_are_mixed_at_the_drawn_snr_after_reverb(real, rooms, shared_data, target):
    x = real["happy"]
    pool = SpeechPool.from_clips([real[w] for w in WORDS], SR)
    noise = NoiseBank.load(shared_data / "background_noise", SR)
    # every mixture is float32(speech + g * added) in float64: rounding adds ~6e-8 x |mixture| per
    # sample, so the measured SNR moves by < 1e-5 dB at these levels; 1e-3 dB is still exact
    tol = 1e-3
    babble = AugmentConfig(babble_fraction=1.0, babble_snr_db=(target, target), babble_talkers=(1, 5))
    talkers = set()
    for seed in range(6):
        a = augment_copy(x, np.random.default_rng(seed), babble, pool=pool, sample_rate=SR, exclude=WORDS.index(
            "happy"))
        assert a.steps == ("babble",) and a.babble_snr_db == target and np.max(np.abs(a.samples)) < 1.0
        assert abs(snr_db(a.speech, a.samples - a.speech) - target) < tol
        talkers.add(float(np.round(np.corrcoef(a.samples, x)[0, 1], 6)))
    assert len(talkers) > 1  # different draws, different talkers
    both = AugmentConfig(reverb_fraction=1.0, noise_fraction=1.0, snr_db=(target, target))
    a = augment_copy(x, np.random.default_rng(1), both, noise, sample_rate=SR, rooms=rooms)
    assert a.steps == ("reverb", "noise") and a.snr_db == target
    assert not np.allclose(a.speech, x, atol=1e-3)  # the SNR's reference is the reverberant speech
    assert abs(snr_db(a.speech, a.samples - a.speech) - target) < tol


def test_babble_never_mixes_a_clip_with_itself():
    x = (0.1 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    cfg = AugmentConfig(babble_fraction=1.0, babble_talkers=(1, 5))
    alone = SpeechPool.from_clips([x], SR)
    with pytest.raises(ValueError, match="needs a SpeechPool"):  # never a silent no-op
        augment(x, np.random.default_rng(0), cfg, sample_rate=SR)
    with pytest.raises(ValueError, match="at 16000 Hz, the clip at 8000 Hz"):
        augment(x, np.random.default_rng(0), cfg, pool=alone, sample_rate=8000)
    with pytest.raises(ValueError, match="needs a RoomBank"):
        augment(x, np.random.default_rng(0), AugmentConfig(reverb_fraction=0.1), sample_rate=SR)
    a = augment_copy(x, np.random.default_rng(0), cfg, pool=alone, sample_rate=SR, exclude=0)
    assert a.steps == () and a.babble_snr_db is None and np.array_equal(a.samples, x)
    other = (0.1 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)).astype(np.float32)
    two = SpeechPool.from_clips([x, other], SR)
    for seed in range(5):
        a = augment_copy(x, np.random.default_rng(seed), cfg, pool=two, sample_rate=SR, exclude=0)
        mixed = a.samples - a.speech
        spec = np.abs(np.fft.rfft(mixed))
        assert a.steps == ("babble",) and spec[1000] > 100 * spec[440]  # only the other clip (1 Hz bins)


# ---------------------------------------------------------------- determinism and the builder

@pytest.mark.shared
def test_augment_is_pure_and_the_builder_is_deterministic_per_seed(shared_data, tmp_path):
    from core.data.dataset import DatasetConfig, build_dataset, featurizer_info
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    sample = shared_data / "speech_commands_v0.01_sample"
    entries = [(str(p), w) for w in ("yes", "no") for p in sorted((sample / w).glob("*.wav"))[:3]]
    noise = NoiseBank.load(shared_data / "background_noise", SR)
    every = AugmentConfig(noise_fraction=0.7, time_shift_ms=50, gain_db=(-6, 0), speed=(0.95, 1.05),
                          reverb_fraction=0.7, rooms=2, pitch_fraction=0.7, band_fraction=0.5,
                          telephone_fraction=0.3, eq_fraction=0.5, babble_fraction=0.7, copies=2)
    x = read_wav(entries[0][0], SR)[0]
    keep = x.copy()
    bank = RoomBank.simulate(every, SR, 0)
    pool = SpeechPool(tuple(p for p, _ in entries), SR)
    one = augment(x, np.random.default_rng(5), every, noise, pool, sample_rate=SR, rooms=bank, exclude=0)
    two = augment(x, np.random.default_rng(5), every, noise, pool, sample_rate=SR, rooms=bank, exclude=0)
    assert np.array_equal(one, two) and np.array_equal(x, keep)  # same draws, same copy; input untouched
    again = RoomBank.simulate(every, SR, 0)
    assert all(np.array_equal(a, b) for a, b in zip(bank.rirs, again.rirs))  # rooms: per seed too

    feat = build_featurizer(FeaturizerConfig())
    meta = featurizer_info(feat)
    cats = ["no", "yes"]
    runs = [build_dataset(entries, cats, feat, meta, config=DatasetConfig(seed=seed), augment_config=every,
                          noise=noise, jobs=jobs).dataset for seed, jobs in ((3, 1), (3, 2), (4, 1))]
    assert len(runs[0]) == 3 * len(entries)
    np.testing.assert_array_equal(runs[0].features, runs[1].features)  # any number of workers
    assert not np.array_equal(runs[0].features, runs[2].features)  # another seed, other copies
    stored = runs[0].meta["augment"]
    assert AugmentConfig(**stored) == every and runs[0].meta["reverb"]["rooms"] == 2


# ---------------------------------------------------------------- the DevKit still hears the words

@pytest.mark.shared
def test_devkit_recognises_mildly_augmented_real_clips(shared_data):
    """Sanity, not an accuracy claim: mild settings of every step at once keep most words the
    DevKit classifier (without its VAD, reset per clip) gets right on the clean clips. It was
    trained on close-talk recordings: reverb and babble cost it the most (one step at a time it
    keeps 16-19 of these 19 words; all at once 13-16 over seeds 0-3), hence two thirds."""
    from core.evaluate.passrate import decide
    from core.models import load_categories, load_model
    from core.pipeline import KeywordSpotter
    from core.vad.model import strip_vad

    d = shared_data / "ell_devkit_model"
    cats = load_categories(d / "categories.txt")
    spotter = KeywordSpotter(load_model(d / "featurizer.ell"), strip_vad(load_model(d / "classifier.ell")),
                             backend="interpreter")
    sample = shared_data / "speech_commands_v0.01_sample"
    clips = [(read_wav(p, SR)[0], w) for w in ("bed", "cat", "happy", "seven", "yes", "no", "four", "two", "left", "up")
             for p in sorted((sample / w).glob("*.wav"))[:2]]
    mild = AugmentConfig(noise_fraction=1.0, snr_db=(20.0, 25.0), reverb_fraction=1.0, rt60_s=(0.2, 0.35), rooms=3,
                         pitch_fraction=1.0, pitch_factor=(0.95, 1.05), band_fraction=1.0,
                         low_cut_hz=(50.0, 100.0), high_cut_hz=(6000.0, 7500.0), eq_fraction=1.0,
                         eq_gain_db=(-3.0, 3.0), babble_fraction=1.0, babble_snr_db=(25.0, 30.0))
    rooms = RoomBank.simulate(mild, SR, seed=0)
    pool = SpeechPool.from_clips([x for x, _ in clips], SR)
    noise = NoiseBank.load(shared_data / "background_noise", SR)

    def word(x):
        spotter.reset()
        return decide(spotter.process(x)[1], cats)[0]

    clean = [i for i, (x, w) in enumerate(clips) if word(x) == w]
    rng = np.random.default_rng(0)
    kept = [i for i in clean if word(augment(clips[i][0], rng, mild, noise, pool, sample_rate=SR, rooms=rooms,
                                             exclude=i)) == clips[i][1]]
    assert len(clean) >= 14  # the DevKit's ~88 % on unseen speakers
    assert len(kept) >= 2 / 3 * len(clean), (len(kept), len(clean))


@pytest.mark.shared
def test_data_bench_reports_every_step_beside_librosa(shared_data, tmp_path, capsys):
    """`kws bench --data` runs (a few real clips, two rooms); speed claims live in the bench."""
    import shutil

    from core.data.bench import STEPS, bench_dataset

    sample = shared_data / "speech_commands_v0.01_sample"
    for w in ("yes", "no"):
        (tmp_path / w).mkdir()
        for p in sorted((sample / w).glob("*.wav"))[:2]:
            shutil.copy(p, tmp_path / w / p.name)  # a temporary folder in the dataset's layout
    bench_dataset(tmp_path, jobs=1, rooms=2)
    out = capsys.readouterr().out
    assert "room bank: 2 rooms" in out and "featurize only" in out and "librosa" in out
    for name in [*STEPS, "all together"]:
        assert f"    {name}" in out and "rows/s" in out.split(f"    {name}")[1].splitlines()[0]


def test_babble_never_goes_into_or_comes_from_background_recordings(shared_data):
    """A background-labelled recording gets no words mixed in, and is no babble source: its rows
    are the same whether babble is on or off."""
    from core.data.dataset import DatasetConfig, build_dataset, featurizer_info
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    sample = shared_data / "speech_commands_v0.01_sample"
    noise = sorted((shared_data / "micro_speech").glob("noise*.wav"))[0]
    entries = [(noise, "background_noise")] + [(sorted((sample / w).glob("*.wav"))[0], w) for w in ("yes", "no")]
    feat = build_featurizer(FeaturizerConfig())
    cats = ["background_noise", "yes", "no"]

    def rows(babble):
        aug = AugmentConfig(copies=2, babble_fraction=babble, babble_snr_db=(0.0, 0.0), babble_talkers=(1, 1))
        ds = build_dataset(entries, cats, feat, featurizer_info(feat), config=DatasetConfig(seed=3),
                           augment_config=aug).dataset
        return ds.features[ds.labels == 0], ds.features[ds.labels != 0]

    (bg_on, speech_on), (bg_off, speech_off) = rows(1.0), rows(0.0)
    np.testing.assert_array_equal(bg_on, bg_off)
    assert not np.array_equal(speech_on, speech_off)  # the words did get each other's babble
