"""Featurizer vs an independent reference written as plain loops over the formulas."""

import math

import numpy as np
import pytest
import scipy.fft

from core.features import dsp
from core.features.featurizer import FeaturizerConfig, build_featurizer, featurize
from core.graph.interpreter import Interpreter


def ref_mel_bank(n_filters, n_fft, sr):
    """SPEC.md's mel bank, one element at a time."""
    def mel(f):
        return 1127.0 * math.log(1 + f / 700.0)

    def inv(m):
        return 700.0 * (math.exp(m / 1127.0) - 1)

    step = mel(sr / 2) / (n_filters + 1)
    bins = [int(inv(i * step) * (n_fft + 1) / sr) for i in range(n_filters + 2)]
    n_bins = n_fft // 2 + 1
    bank = [[0.0] * n_bins for _ in range(n_filters)]
    for j in range(n_filters):
        lo, c, hi = bins[j], bins[j + 1], bins[j + 2]
        for k in range(n_bins):
            if lo <= k < c:
                bank[j][k] = (k - lo) / (c - lo)
            elif c <= k < hi:
                bank[j][k] = (hi - k) / (hi - c)
    return bank


def ref_featurize(x, cfg: FeaturizerConfig, dft=False):
    """Straightforward per-sample / per-bin loops (plain DFT when dft=True)."""
    w, hop, n_fft = cfg.window_size, cfg.hop_length, cfg.fft_size
    buf = [0.0] * w
    prev = 0.0
    bank = ref_mel_bank(cfg.n_filters, n_fft, cfg.sample_rate) if cfg.filterbank == "mel" else None
    out = []
    scale = 1.0 if cfg.auto_scale else 32768.0
    for f in range(len(x) // hop):
        for s in x[f * hop : (f + 1) * hop]:
            s = float(s) * scale
            y = s - cfg.preemphasis * prev if cfg.preemphasis else s
            prev = s
            buf = buf[1:] + [y]
        if cfg.window == "hamming":
            frame = [buf[n] * (0.54 - 0.46 * math.cos(2 * math.pi * n / (w - 1))) for n in range(w)]
        elif cfg.window == "hann":
            frame = [buf[n] * (0.5 - 0.5 * math.cos(2 * math.pi * n / (w - 1))) for n in range(w)]
        else:
            frame = list(buf)
        frame = (frame + [0.0] * n_fft)[:n_fft]
        if dft:
            mags = []
            for k in range(n_fft // 2 + 1):
                re = sum(frame[n] * math.cos(2 * math.pi * k * n / n_fft) for n in range(n_fft))
                im = -sum(frame[n] * math.sin(2 * math.pi * k * n / n_fft) for n in range(n_fft))
                mags.append(re * re + im * im)
        else:
            spec = np.fft.rfft(np.array(frame))
            mags = list(spec.real**2 + spec.imag**2)
        v = [m / n_fft for m in mags] if cfg.power_spec else [math.sqrt(m) for m in mags]
        if bank is not None:
            v = [sum(bank[j][k] * v[k] for k in range(len(v))) for j in range(len(bank))]
        if cfg.log:
            v = [math.log(a + cfg.log_delta) for a in v]
        if cfg.dct:
            n = len(v)
            v = [sum(v[i] * math.cos(math.pi / n * (i + 0.5) * k) for i in range(n)) for k in range(n)]
        out.append(v)
    return np.array(out)


def _signal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def test_small_config_matches_plain_dft_loops():
    cfg = FeaturizerConfig(window_size=64, hop_length=32, n_fft=64, n_filters=8, preemphasis=0.97, dct=True)
    x = _signal(32 * 12)
    np.testing.assert_allclose(featurize(build_featurizer(cfg), x), ref_featurize(x, cfg, dft=True),
                               rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("cfg", [
    FeaturizerConfig(),
    FeaturizerConfig(hop_length=160, n_filters=40),
    FeaturizerConfig(window="hann", power_spec=True, log_delta=1e-6),
    FeaturizerConfig(window="none", log=False),
    FeaturizerConfig(window_size=400, n_fft=1024, hop_length=160, dct=True, preemphasis=0.97),
    FeaturizerConfig(filterbank="none", n_filters=1, log=True),
    FeaturizerConfig(auto_scale=False, n_filters=40),
    FeaturizerConfig(sample_rate=8000, window_size=256, hop_length=128, n_filters=20),
], ids=lambda c: f"w{c.window_size}h{c.hop_length}{c.window}{c.filterbank}{c.n_filters}")
def test_options_match_reference(cfg):
    x = _signal(cfg.hop_length * 20, seed=1)
    ours = featurize(build_featurizer(cfg), x)
    ref = ref_featurize(x, cfg)
    assert ours.shape == (20, cfg.n_features)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max() * 1e-2))


def test_linear_filterbank_equally_spaced_in_hz():
    fb = dsp.linear_filterbank(10, 512, 16000)
    peaks = fb.argmax(axis=1)
    assert np.all(np.diff(peaks) > 0)
    assert np.ptp(np.diff(peaks)) <= 1  # equal spacing up to truncation
    np.testing.assert_allclose(fb.max(axis=1), 1.0)


def test_batch_and_streaming_are_identical(shared_data):
    from core.audio.wav import read_wav

    x, _ = read_wav(shared_data / "ell_examples" / "seven.wav")
    for cfg in (FeaturizerConfig(), FeaturizerConfig(hop_length=160, n_filters=40, preemphasis=0.97, dct=True)):
        g = build_featurizer(cfg)
        batch = featurize(g, x)
        rt = Interpreter(g)
        stream = np.stack([rt.step(h) for h in x[: len(batch) * cfg.hop_length].reshape(-1, cfg.hop_length)])
        assert np.array_equal(batch, stream)
        # any split into calls gives the same frames
        rt.reset()
        blocks = x[: len(batch) * cfg.hop_length].reshape(-1, cfg.hop_length)
        parts = np.concatenate([rt.run(blocks[:7]), rt.run(blocks[7:8]), rt.run(blocks[8:])])
        assert np.array_equal(batch, parts)


def test_building_blocks_match_numpy_and_scipy():
    np.testing.assert_allclose(dsp.window_coeffs("hamming", 400), np.hamming(400))
    np.testing.assert_allclose(dsp.window_coeffs("hann", 400), np.hanning(400))
    v = np.random.default_rng(3).standard_normal(40)
    np.testing.assert_allclose(dsp.dct_matrix(40) @ v, scipy.fft.dct(v, type=2) / 2, atol=1e-10)
    frame = np.random.default_rng(4).standard_normal(512).astype(np.float32)
    g = build_featurizer(FeaturizerConfig(window="none", filterbank="none", log=False, hop_length=512))
    np.testing.assert_allclose(Interpreter(g).step(frame), np.abs(np.fft.rfft(frame)), rtol=1e-5, atol=1e-4)


def test_mel_bank_keeps_empty_low_filters_and_formula():
    fb = dsp.mel_filterbank(80, 512, 16000)
    ref = np.array(ref_mel_bank(80, 512, 16000))
    np.testing.assert_allclose(fb, ref)
    assert (fb.sum(axis=1) == 0).any(), "ELL's bank has empty low filters: trained models expect them"
    np.testing.assert_allclose(fb.max(axis=1)[fb.sum(axis=1) > 0], 1.0)


def test_matches_ell_devkit_featurizer(devkit, shared_data):
    from core.audio.wav import read_wav

    ell_feat, _, _ = devkit
    x, _ = read_wav(shared_data / "ell_examples" / "bed.wav")
    ours = featurize(build_featurizer(FeaturizerConfig()), x)
    assert ours.shape == (31, 80)
    np.testing.assert_allclose(ours, featurize(ell_feat, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, word", [
    (dict(window_size=0), "window_size"), (dict(n_fft=500), "n_fft"), (dict(filterbank="bark"), "filterbank"),
    (dict(window="kaiser"), "window"), (dict(preemphasis=1.5), "preemphasis"), (dict(hop_length=-1), "hop_length"),
])
def test_bad_config_names_the_value(bad, word):
    with pytest.raises(ValueError, match=word):
        FeaturizerConfig(**bad)
