"""Pure DSP building blocks shared by the interpreter, the compiler and the tests.

ELL-compatible formulas (see SPEC.md): symmetric Hamming, HTK-style mel scale
mel(f) = 1127 ln(1 + f/700), triangle filters on truncated bin indices, unnormalised DCT-II.
"""

from __future__ import annotations

import numpy as np

WINDOWS = ("hamming", "hann", "none")


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def window_coeffs(kind: str, size: int) -> np.ndarray:
    """Symmetric window of `size` points (float64)."""
    n = np.arange(size, dtype=np.float64)
    denom = max(size - 1, 1)
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * n / denom)
    if kind == "hann":
        return 0.5 - 0.5 * np.cos(2 * np.pi * n / denom)
    if kind == "none":
        return np.ones(size)
    raise ValueError(f"window must be one of {WINDOWS}, not {kind!r}")


def hz_to_mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (np.exp(np.asarray(m, dtype=np.float64) / 1127.0) - 1.0)


def triangle_bank(bins: np.ndarray, n_bins: int, offset: float = 0.0) -> np.ndarray:
    """Filters j = triangles over bin indices (bins[j], bins[j+1], bins[j+2]) with peak 1.

    The high bin is excluded. Bins past `n_bins` are dropped; degenerate (empty) filters stay
    empty on purpose: trained models expect them. `offset` shifts the triangle by a fraction of
    a bin (old ELL files used 0.5).
    """
    n_filters = len(bins) - 2
    fb = np.zeros((n_filters, n_bins), dtype=np.float64)
    for j in range(n_filters):
        lo, mid, hi = int(bins[j]), int(bins[j + 1]), int(bins[j + 2])
        for k in range(lo, min(mid, n_bins)):
            fb[j, k] = (k - lo + offset) / (mid - lo)
        for k in range(mid, min(hi, n_bins)):
            fb[j, k] = (hi - k - offset) / (hi - mid)
    return fb


def mel_bins(n_filters: int, n_fft: int, sample_rate: float, f_min: float = 0.0, f_max: float | None = None):
    f_max = sample_rate / 2.0 if f_max is None else f_max
    lo, hi = hz_to_mel(f_min), hz_to_mel(f_max)
    step = (hi - lo) / (n_filters + 1)
    freqs = mel_to_hz(lo + np.arange(n_filters + 2) * step)
    return np.floor(freqs * (n_fft + 1) / sample_rate).astype(np.int64)


def mel_filterbank(n_filters: int, n_fft: int, sample_rate: float, n_bins: int | None = None) -> np.ndarray:
    """(n_filters, n_bins) mel filter matrix; n_bins defaults to n_fft // 2 + 1."""
    n_bins = n_fft // 2 + 1 if n_bins is None else n_bins
    return triangle_bank(mel_bins(n_filters, n_fft, sample_rate), n_bins)


def linear_filterbank(n_filters: int, n_fft: int, sample_rate: float, n_bins: int | None = None) -> np.ndarray:
    """Triangles equally spaced in Hz (ELL's LinearFilterBank)."""
    n_bins = n_fft // 2 + 1 if n_bins is None else n_bins
    freqs = np.arange(n_filters + 2) * (sample_rate / 2.0) / (n_filters + 1)
    bins = np.floor(freqs * (n_fft + 1) / sample_rate).astype(np.int64)
    return triangle_bank(bins, n_bins)


def dct_matrix(n_in: int, n_out: int | None = None) -> np.ndarray:
    """Unnormalised DCT-II: X[k] = sum_n x[n] cos(pi/N (n + 1/2) k)."""
    n_out = n_in if n_out is None else n_out
    n = np.arange(n_in)[None, :]
    k = np.arange(n_out)[:, None]
    return np.cos(np.pi / n_in * (n + 0.5) * k)
