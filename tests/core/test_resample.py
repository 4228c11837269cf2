"""StreamingResampler vs scipy's resample_poly (the batch path), block size independent."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from core.audio.resample import StreamingResampler, design_filter, resample

RATES = [(44100, 16000), (48000, 16000), (8000, 16000), (16000, 16000)]


def stream(resampler: StreamingResampler, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out, i = [], 0
    while i < len(x):
        n = int(rng.choice([0, 1, 7, 160, 441, 512, 1000, 4096]))
        out.append(resampler.process(x[i : i + n]))
        i += n
    return np.concatenate(out)


def delay_out(src: int, dst: int) -> int:
    """The streaming filter's delay in output samples: half its length at the upsampled rate."""
    r = StreamingResampler(src, dst)
    if r.identity:
        return 0
    half = (len(design_filter(r.up, r.down)) - 1) // 2
    assert half % r.down == 0  # true for these ratios: the delay is a whole number of outputs
    return half // r.down


@pytest.mark.parametrize("src,dst", RATES)
def test_streaming_equals_resample_poly_after_its_delay(src, dst):
    rng = np.random.default_rng(src + dst)
    x = rng.uniform(-1, 1, 3 * src)  # 3 s of white noise: every frequency is exercised
    y = stream(StreamingResampler(src, dst), x.astype(np.float32), rng)
    up, down = dst // np.gcd(src, dst), src // np.gcd(src, dst)
    ref = signal.resample_poly(x.astype(np.float32).astype(np.float64), up, down, window=("kaiser", 5.0))
    d = delay_out(src, dst)
    assert len(y) == int(np.ceil(len(x) * up / down))
    steady = slice(d + 100, len(ref) - 100)  # away from both ends, where resample_poly zero-pads
    shifted = y[d:]
    n = min(len(shifted), len(ref))
    np.testing.assert_allclose(
        shifted[:n][steady.start : steady.stop], ref[:n][steady.start : steady.stop], rtol=0, atol=1e-4
    )


@pytest.mark.parametrize("src,dst", RATES)
def test_block_size_does_not_matter(src, dst):
    x = np.random.default_rng(1).uniform(-1, 1, src).astype(np.float32)
    whole = StreamingResampler(src, dst).process(x)
    pieces = stream(StreamingResampler(src, dst), x, np.random.default_rng(2))
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-6)


def test_reset_forgets_history():
    r = StreamingResampler(44100, 16000)
    x = np.random.default_rng(3).uniform(-1, 1, 4410).astype(np.float32)
    first = r.process(x)
    r.process(np.ones(1000, np.float32))
    r.reset()
    np.testing.assert_array_equal(r.process(x), first)


def test_batch_identity_and_bad_rates():
    x = np.arange(10, dtype=np.float64)
    assert resample(x, 16000, 16000).dtype == np.float32
    np.testing.assert_array_equal(resample(x, 16000, 16000), x.astype(np.float32))
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0, 16000)
