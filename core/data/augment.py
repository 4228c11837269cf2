"""Audio augmentation for datasets: noise at a chosen SNR, time shift, gain, speed.

ELL's make_dataset mixes noise into every 10th file at a fixed amplitude ratio of 0.1, whatever
the loudness of the speech. Here each clip (or augmented copy) gets noise with probability
`noise_fraction`, scaled so that the speech-to-noise power ratio over the clip is a value drawn
from `snr_db`. Everything draws from a caller-supplied `numpy.random.Generator`, so a seed
reproduces a dataset exactly, whatever the number of worker processes.

Order of operations for one copy: speed -> time shift -> noise -> gain -> clip to [-1, 1].
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.audio.formats import FORMAT_NAMES, is_audio_name
from core.errors import DataError


def parse_range(text: str | float | tuple, name: str) -> tuple[float, float]:
    """"LOW,HIGH" or a single value (LOW = HIGH) -> (low, high); ValueError names the option."""
    if isinstance(text, tuple):
        vals = list(text)
    elif isinstance(text, (int, float)):
        vals = [float(text)]
    else:
        try:
            vals = [float(v) for v in str(text).split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{name}: expected LOW,HIGH or one number, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{name}: expected LOW,HIGH or one number, got {text!r}")
    lo, hi = vals
    if lo > hi:
        raise ValueError(f"{name}: LOW must not exceed HIGH, got {text!r}")
    return float(lo), float(hi)


@dataclass(frozen=True)
class AugmentConfig:
    noise_fraction: float = 0.0  # probability that a clip (or copy) gets noise
    snr_db: tuple[float, float] = (5.0, 20.0)  # speech-to-noise power ratio, drawn uniformly
    time_shift_ms: float = 0.0  # random shift in [-t, t], zero filled
    gain_db: tuple[float, float] = (0.0, 0.0)
    speed: tuple[float, float] = (1.0, 1.0)  # playback speed factor (pitch moves with it)
    copies: int = 0  # augmented copies per clip in addition to the clean one

    def __post_init__(self):
        if not 0.0 <= self.noise_fraction <= 1.0:
            raise ValueError(f"noise fraction must be in [0, 1], got {self.noise_fraction}")
        if self.time_shift_ms < 0:
            raise ValueError(f"time shift must be >= 0 ms, got {self.time_shift_ms}")
        if not (0.5 <= self.speed[0] <= self.speed[1] <= 2.0):
            raise ValueError(f"speed range must lie within [0.5, 2.0], got {self.speed}")
        if not isinstance(self.copies, (int, np.integer)) or self.copies < 0:
            raise ValueError(f"augment copies must be a non-negative integer, got {self.copies!r}")
        for name in ("snr_db", "gain_db", "speed"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: LOW must not exceed HIGH, got {(lo, hi)}")

    @property
    def active(self) -> bool:
        """Does any augmentation change the audio?"""
        return (self.noise_fraction > 0 or self.time_shift_ms > 0 or self.gain_db != (0.0, 0.0)
                or self.speed != (1.0, 1.0))

    def to_dict(self) -> dict:
        return asdict(self)


def list_noise_files(folder: str | os.PathLike) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"{d}: noise folder not found")
    files = sorted(p for p in d.iterdir() if is_audio_name(p) and p.is_file())
    if not files:  # a dataset root: look one level down (e.g. _background_noise_/)
        files = sorted(p for p in d.glob("*/*") if is_audio_name(p) and p.is_file())
    if not files:
        raise DataError(f"{d}: no audio files ({FORMAT_NAMES}) in this noise folder")
    return files


@dataclass(frozen=True, eq=False)
class NoiseBank:
    """Noise recordings at the dataset's sample rate; `segment` cuts random stretches."""

    files: tuple[str, ...]
    signals: tuple[np.ndarray, ...]

    @classmethod
    def load(cls, folder: str | os.PathLike, sample_rate: int) -> NoiseBank:
        from core.audio.wav import read_wav

        names, sigs = [], []
        for p in list_noise_files(folder):
            x, _ = read_wav(p, sample_rate)  # AudioError names the file
            if float(np.mean(np.square(x, dtype=np.float64))) <= 0.0:
                continue  # digital silence is no use as noise
            names.append(str(p))
            sigs.append(x)
        if not sigs:
            raise DataError(f"{folder}: every noise file is silent")
        return cls(tuple(names), tuple(sigs))

    def region(self, start: float, stop: float) -> NoiseBank:
        """The same files cut to [start, stop) of their length (keeps splits' noise apart)."""
        cut = [(int(len(s) * start), int(len(s) * stop)) for s in self.signals]
        return NoiseBank(self.files, tuple(s[a: max(b, a + 1)] for s, (a, b) in zip(self.signals, cut)))

    def segment(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n samples from a random file at a random offset (looped when the file is shorter)."""
        x = self.signals[int(rng.integers(len(self.signals)))]
        if len(x) < n:
            x = np.tile(x, -(-n // len(x)))
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start: start + n]


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def noise_gain(signal_power: float, noise_power: float, snr_db: float) -> float:
    """Factor for the noise so that signal_power / (g^2 noise_power) = 10^(snr_db/10)."""
    if signal_power <= 0 or noise_power <= 0:
        return 0.0
    return math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))


def time_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """Delay (shift > 0) or advance (shift < 0) by |shift| samples, zero filled, same length."""
    n, y = len(x), np.zeros_like(x)
    if abs(shift) >= n:
        return y
    if shift >= 0:
        y[shift:] = x[: n - shift]
    else:
        y[: n + shift] = x[-shift:]
    return y


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (shorter, higher pitch) by band-limited resampling.

    The factor is rounded to 0.01 so the polyphase filter stays short."""
    from core.audio.resample import resample

    k = int(round(factor * 100))
    if k == 100:
        return x
    return resample(x, k, 100)


@dataclass(frozen=True)
class Augmented:
    samples: np.ndarray  # the augmented clip, float32
    noise_tail: np.ndarray | None  # the same noise, same gain, continuing past the clip's end
    snr_db: float | None


def augment(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, sample_rate: int,
            noise: NoiseBank | None = None, tail: int = 0) -> Augmented:
    """One augmented copy of clip `x`. `tail` extra noise samples are returned for padding."""
    y = np.asarray(x, dtype=np.float32)
    if cfg.speed != (1.0, 1.0):
        y = change_speed(y, float(rng.uniform(*cfg.speed)))
    if cfg.time_shift_ms > 0:
        limit = int(round(cfg.time_shift_ms * sample_rate / 1000.0))
        y = time_shift(y, int(rng.integers(-limit, limit + 1)))
    snr = None
    noise_tail = None
    if noise is not None and cfg.noise_fraction > 0 and rng.random() < cfg.noise_fraction:
        snr = float(rng.uniform(*cfg.snr_db))
        seg = noise.segment(rng, len(y) + tail).astype(np.float64)
        g = noise_gain(power(y), power(seg[: len(y)]), snr)
        if g > 0:
            y = (y + g * seg[: len(y)]).astype(np.float32)
            noise_tail = (g * seg[len(y):]).astype(np.float32)
        else:
            snr = None  # a silent clip has no SNR: leave it clean
    if cfg.gain_db != (0.0, 0.0):
        g = np.float32(10.0 ** (rng.uniform(*cfg.gain_db) / 20.0))
        y = y * g
        noise_tail = None if noise_tail is None else noise_tail * g
    y = np.clip(y, -1.0, 1.0)
    if noise_tail is not None:
        noise_tail = np.clip(noise_tail, -1.0, 1.0)
    return Augmented(y.astype(np.float32, copy=False), noise_tail, snr)
