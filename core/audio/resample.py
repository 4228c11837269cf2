"""Band-limited resampling: polyphase windowed-sinc FIR (Kaiser), batch and streaming.

Batch uses scipy's resample_poly (delay compensated). The streaming resampler uses the same
filter design, is causal, keeps its history between blocks and allocates only per block.
"""

from __future__ import annotations

from math import gcd

import numpy as np


def _ratio(src: int, dst: int) -> tuple[int, int]:
    if src <= 0 or dst <= 0:
        raise ValueError(f"sample rates must be positive, got {src} -> {dst}")
    g = gcd(int(src), int(dst))
    return dst // g, src // g


def design_filter(up: int, down: int, half_taps_per_phase: int = 10, beta: float = 5.0) -> np.ndarray:
    """The anti-aliasing low-pass at the upsampled rate, gain `up` (scipy's resample_poly design)."""
    from scipy import signal  # imported on first use: it takes a second to load

    max_rate = max(up, down)
    half_len = half_taps_per_phase * max_rate
    h = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", beta))
    return (h * up).astype(np.float64)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample a whole signal (float32 out)."""
    up, down = _ratio(src_rate, dst_rate)
    if up == down:
        return np.asarray(x, dtype=np.float32)
    from scipy import signal

    y = signal.resample_poly(np.asarray(x, dtype=np.float64), up, down, window=("kaiser", 5.0))
    return y.astype(np.float32)


class StreamingResampler:
    """Causal polyphase resampler for live input: feed blocks of any size, get what is ready."""

    def __init__(self, src_rate: int, dst_rate: int):
        self.up, self.down = _ratio(src_rate, dst_rate)
        self.identity = self.up == self.down
        h = design_filter(self.up, self.down) if not self.identity else np.ones(1)
        self.taps_per_phase = -(-len(h) // self.up)
        padded = np.zeros(self.taps_per_phase * self.up)
        padded[: len(h)] = h
        # phases[p, j] = h[p + j*up]: output at upsampled index n uses x[n//up - j] * h[n%up + j*up]
        self.phases = padded.reshape(self.taps_per_phase, self.up).T.copy()
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(self.taps_per_phase - 1)
        self._next = 0  # upsampled index of the next output, relative to the start of _hist's tail

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64)
        if self.identity:
            return x.astype(np.float32)
        k = self.taps_per_phase
        buf = np.concatenate([self._hist, x])  # buf[k-1] is the first new sample (input index 0)
        n_in = len(x)
        # output upsampled indices n = self._next + m*down with n//up < n_in
        limit = n_in * self.up
        count = max(0, -(-(limit - self._next) // self.down))
        n = self._next + np.arange(count) * self.down
        base, phase = n // self.up, n % self.up
        # gather windows buf[base + k-1 - j] for j = 0..k-1
        idx = (base + (k - 1))[:, None] - np.arange(k)[None, :]
        y = np.einsum("mj,mj->m", buf[idx], self.phases[phase])
        self._next = int(self._next + count * self.down - limit)
        self._hist = buf[len(buf) - (k - 1) :] if k > 1 else np.zeros(0)
        return y.astype(np.float32)
