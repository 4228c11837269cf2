"""`kws bench`'s resample section: our resampler beside its peers, speed and accuracy in one table.

Accuracy is measured against the exact answer: a sampled sine resampled must equal the same sine
sampled at the new rate. Per resampler: the passband ripple (largest gain error of tones up to 85 %
of the lower Nyquist), the largest sample error against the exact sine there, and the worst alias
(the loudest output of tones between the new Nyquist and the old one, which must vanish).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

Resampler = Callable[[np.ndarray, int, int], np.ndarray]
AMP = 0.5


def peers() -> list[tuple[str, Resampler]]:
    """(name, fn(x, src, dst)) of every resampler importable here, ours first."""
    from core.audio.resample import QUALITY, resample

    out: list[tuple[str, Resampler]] = [(f"kws: soxr {QUALITY} (core.audio.resample)", resample)]
    try:
        import soxr

        out.append(("soxr VHQ", lambda x, s, d: soxr.resample(x, s, d, quality="VHQ")))
    except ImportError:
        pass
    try:
        from scipy import signal

        out.append(("scipy resample_poly, Kaiser 5 (kws before)",
                    lambda x, s, d: signal.resample_poly(x.astype(np.float64), *_up_down(s, d),
                                                         window=("kaiser", 5.0)).astype(np.float32)))
    except ImportError:
        pass
    try:
        import librosa

        out.append((f"librosa {librosa.__version__} resample (default)",
                    lambda x, s, d: librosa.resample(x, orig_sr=s, target_sr=d)))
    except ImportError:
        pass
    return out


def _up_down(src: int, dst: int) -> tuple[int, int]:
    from math import gcd

    g = gcd(src, dst)
    return dst // g, src // g


def _sine(rate: int, freq: float, n: int) -> np.ndarray:
    return AMP * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def accuracy(fn: Resampler, src: int, dst: int, tones: int = 16) -> dict[str, float]:
    """ripple_db, max_error (vs the exact sine, amplitude 0.5) and alias_db (nan when upsampling)."""
    ripple, err = 0.0, 0.0
    edge = dst // 10  # skip where the tone starts and stops abruptly
    m = np.arange(dst)
    for f in np.linspace(50.0, 0.85 * min(src, dst) / 2, tones):
        y = np.asarray(fn(_sine(src, f, src).astype(np.float32), src, dst), np.float64)[:dst]
        basis = np.stack([np.sin(2 * np.pi * f * m / dst), np.cos(2 * np.pi * f * m / dst)], 1)[edge:-edge]
        coef, *_ = np.linalg.lstsq(basis, y[edge:-edge], rcond=None)
        ripple = max(ripple, abs(20 * np.log10(np.hypot(*coef) / AMP)))
        err = max(err, float(np.abs(y - _sine(dst, f, dst))[edge:-edge].max()))
    alias = float("nan")
    if src > dst:
        alias = -np.inf
        for f in np.linspace(dst / 2 + 50, src / 2 - 50, tones):
            y = np.asarray(fn(_sine(src, f, src).astype(np.float32), src, dst), np.float64)[edge:dst - edge]
            rms = np.sqrt(np.mean(y ** 2))
            alias = max(alias, 20 * np.log10(rms / (AMP / np.sqrt(2)) + 1e-30))
    return {"ripple_db": ripple, "max_error": err, "alias_db": alias}


def speed_ms(fn: Resampler, src: int, dst: int, seconds: float = 10.0, repeat: int = 3) -> float:
    """Best of `repeat` runs on `seconds` of white noise, in milliseconds."""
    x = np.random.default_rng(0).uniform(-1, 1, int(src * seconds)).astype(np.float32)
    fn(x[:src], src, dst)  # warm up (imports, plans)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(x, src, dst)
        best = min(best, time.perf_counter() - t)
    return 1000 * best


def bench_resample(pairs: tuple[tuple[int, int], ...] = ((44100, 16000), (48000, 16000), (8000, 16000)),
                   seconds: float = 10.0) -> list[dict]:
    """Print one table per rate pair; return the rows."""
    rows = []
    for src, dst in pairs:
        print(f"\n== resample {src} -> {dst} Hz: time for {seconds:g} s of audio (best of 3); accuracy against "
              "the exact resampled sine")
        print(f"  {'resampler':<46}{'ms':>9}{'x realtime':>12}{'ripple dB':>11}{'max error':>11}{'alias dB':>10}")
        for name, fn in peers():
            ms = speed_ms(fn, src, dst, seconds)
            acc = accuracy(fn, src, dst)
            alias = "-" if np.isnan(acc["alias_db"]) else f"{acc['alias_db']:.1f}"
            print(f"  {name:<46}{ms:>9.1f}{1000 * seconds / ms:>12.0f}{acc['ripple_db']:>11.4f}"
                  f"{acc['max_error']:>11.1e}{alias:>10}", flush=True)
            rows.append({"src": src, "dst": dst, "name": name, "ms": ms, **acc})
    return rows
