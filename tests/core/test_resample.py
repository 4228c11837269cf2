"""The resampler (soxr HQ) against the exact answer: a sampled sine resampled is the same sine sampled at
the new rate. Streaming in blocks of any size plus flush equals the batch call."""

from __future__ import annotations

import numpy as np
import pytest

from core.audio.resample import StreamingResampler, resample

RATES = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100)]
AMP = 0.5
# soxr's HQ recipe (SoX `rate -h`): passband rolloff <= 0.01 dB, rejection ~125 dB. For a tone of
# amplitude A in the passband the output differs from the exact sine by at most
#   A * (10**(0.01/20) - 1) = 5.8e-4 (rolloff)  +  A * 10**(-120/20) = 5e-7 (stopband leakage)
#   + float32 arithmetic: a few hundred taps, each product rounded at 2**-24 relative: ~sqrt(300) *
#     6e-8 * A = 5e-7, plus the half-ulp rounding of the output (3e-8).
# 6e-4 covers the sum with margin for the leakage and rounding terms, and is 5x tighter than the
# 3.0e-3 the previous polyphase Kaiser filter reached on these tones, so it tells the two apart.
PASSBAND_ATOL = 6e-4
# Tones above the new Nyquist must vanish (no aliasing): 120 dB below the input, the HQ rejection
# less its 5 dB margin; the previous filter let them through at -6.6 dB.
STOPBAND_DB = -120.0


def sine(rate: int, freq: float, n: int) -> np.ndarray:
    return AMP * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def steady(y: np.ndarray, margin: int) -> np.ndarray:
    """Away from both ends, where the signal starts and stops abruptly."""
    return y[margin:-margin]


@pytest.mark.parametrize("src,dst", RATES)
def test_passband_tones_equal_the_exact_sine_at_the_new_rate(src, dst):
    top = 0.85 * min(src, dst) / 2  # inside the flat part of the passband (the -3 dB point is ~95 %)
    worst = 0.0
    for freq in np.linspace(50.0, top, 12):
        x = sine(src, freq, src).astype(np.float32)
        y = resample(x, src, dst)
        assert y.dtype == np.float32 and len(y) == dst
        exact = sine(dst, freq, dst)
        worst = max(worst, float(np.abs(steady(y - exact, dst // 10)).max()))
    assert worst <= PASSBAND_ATOL


@pytest.mark.parametrize("src", [22050, 44100, 48000])
def test_tones_above_the_new_nyquist_do_not_alias(src):
    dst = 16000
    for freq in np.linspace(dst / 2 + 50, src / 2 - 50, 9):
        y = resample(sine(src, freq, src).astype(np.float32), src, dst)
        rms = float(np.sqrt(np.mean(steady(y, dst // 10).astype(np.float64) ** 2)))
        assert 20 * np.log10(rms / (AMP / np.sqrt(2)) + 1e-30) < STOPBAND_DB, freq


def stream(resampler: StreamingResampler, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out, i = [], 0
    while i < len(x):
        n = int(rng.choice([0, 1, 7, 160, 441, 512, 1000, 4096]))
        out.append(resampler.process(x[i : i + n]))
        i += n
    out.append(resampler.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("src,dst", RATES + [(16000, 16000)])
def test_streaming_plus_flush_equals_the_batch_call(src, dst):
    rng = np.random.default_rng(src + dst)
    x = rng.uniform(-1, 1, 2 * src).astype(np.float32)  # white noise: every frequency is exercised
    y = stream(StreamingResampler(src, dst), x, rng)
    # The same soxr filter runs over the same samples in its own internal blocks whatever the
    # caller's block sizes, so the result is identical, not merely close.
    np.testing.assert_array_equal(y, resample(x, src, dst))


def test_reset_and_flush_start_a_new_signal():
    r = StreamingResampler(44100, 16000)
    x = np.random.default_rng(3).uniform(-1, 1, 44100).astype(np.float32)
    first = np.concatenate([r.process(x), r.flush()])
    again = np.concatenate([r.process(x), r.flush()])  # flush left no history behind
    np.testing.assert_array_equal(again, first)
    r.process(np.ones(1000, np.float32))
    r.reset()
    np.testing.assert_array_equal(np.concatenate([r.process(x), r.flush()]), first)


def test_identity_empty_and_bad_rates():
    x = np.arange(10, dtype=np.float64)
    y = resample(x, 16000, 16000)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32))
    assert resample(np.zeros(0), 44100, 16000).shape == (0,)
    r = StreamingResampler(16000, 16000)
    np.testing.assert_array_equal(r.process(x), x.astype(np.float32))
    assert len(r.flush()) == 0
    for bad in ((0, 16000), (16000, -1)):
        with pytest.raises(ValueError, match="positive"):
            StreamingResampler(*bad)
        with pytest.raises(ValueError, match="positive"):
            resample(x, *bad)
