"""Streaming detection metrics: a long stream assembled from clips, silence gaps and background
noise; hits, misses and false accepts per hour at a threshold and smoothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.audio.wav import read_wav
from core.data.augment import noise_gain, power
from core.errors import AudioError, DataError
from core.pipeline import Detector, KeywordSpotter


@dataclass(frozen=True)
class Event:
    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True)
class Stream:
    samples: np.ndarray
    sample_rate: int
    events: tuple[Event, ...]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float, signal_power: float | None = None) -> np.ndarray:
    """signal + noise scaled so that 10 log10(P_signal / P_noise) = snr_db. P_signal is the mean
    square of `signal` unless given (e.g. measured over the speech parts only)."""
    gain = noise_gain(power(signal) if signal_power is None else signal_power, power(noise), snr_db)
    return (signal + gain * noise).astype(np.float32)


def assemble_stream(clips: list[tuple[Path, str]], sample_rate: int, gap_s: tuple[float, float] = (0.5, 1.5),
                    noise_files: list[Path] | None = None, snr_db: float = 20.0, seed: int = 0) -> Stream:
    """Clips separated by random gaps; with noise files, background noise under the whole stream
    at `snr_db` relative to the speech (computed over the speech parts)."""
    rng = np.random.default_rng(seed)
    parts, events, pos = [], [], 0
    for path, label in clips:
        try:
            x, _ = read_wav(path, sample_rate)
        except AudioError:
            continue
        gap = np.zeros(int(rng.uniform(*gap_s) * sample_rate), np.float32)
        parts += [gap, x]
        start = pos + len(gap)
        events.append(Event(start / sample_rate, (start + len(x)) / sample_rate, label))
        pos = start + len(x)
    if clips and not events:
        raise DataError(f"none of the {len(clips)} clips could be read (the first: {clips[0][0]})")
    parts.append(np.zeros(int(gap_s[1] * sample_rate), np.float32))
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if noise_files and events:  # the SNR is relative to the speech
        noise = np.concatenate([read_wav(p, sample_rate)[0] for p in noise_files])
        reps = -(-len(samples) // len(noise))
        noise = np.tile(noise, reps)
        off = int(rng.integers(0, len(noise) - len(samples) + 1))
        noise = noise[off : off + len(samples)]
        speech = np.concatenate([samples[int(e.start_s * sample_rate) : int(e.end_s * sample_rate)] for e in events])
        samples = mix_at_snr(samples, noise, snr_db, power(speech))
    return Stream(samples, sample_rate, tuple(events))


@dataclass
class StreamMetrics:
    hits: int = 0
    misses: int = 0
    false_accepts: int = 0
    duration_s: float = 0.0
    detections: list[tuple[float, str, float]] = field(default_factory=list)

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / (self.duration_s / 3600) if self.duration_s else 0.0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    def to_dict(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "false_accepts": self.false_accepts,
                "hit_rate": self.hit_rate, "fa_per_hour": self.fa_per_hour, "duration_s": self.duration_s,
                "detections": self.detections}


def stream_metrics(spotter: KeywordSpotter, categories: list[str], stream: Stream, threshold: float = 0.6,
                   smoothing: int = 0, ignore: tuple[str, ...] = (), tolerance_s: float = 0.5) -> StreamMetrics:
    """A detection of the right label inside [start, end + tolerance] of an event is a hit (once per
    event); every other detection is a false accept."""
    spotter.reset()
    _, probs = spotter.process(stream.samples)
    return detection_metrics(probs, spotter.frame_duration_s, stream.events, stream.duration_s, categories,
                             threshold, smoothing, ignore, tolerance_s)


def detection_metrics(probs: np.ndarray, hop_s: float, events: tuple[Event, ...], duration_s: float,
                      categories: list[str], threshold: float = 0.6, smoothing: int = 0,
                      ignore: tuple[str, ...] = (), tolerance_s: float = 0.5) -> StreamMetrics:
    """stream_metrics on (frames, classes) outputs already computed for the stream."""
    det = Detector(categories, threshold, smoothing, ignore)
    out = StreamMetrics(duration_s=duration_s)
    for t, p in enumerate(probs):
        d = det.update(p)
        if d is not None:
            out.detections.append(((t + 1) * hop_s, d.label, d.probability))
    matched = [False] * len(events)
    for time_s, label, _ in out.detections:
        hit = next((i for i, e in enumerate(events) if not matched[i] and e.label == label
                    and e.start_s <= time_s <= e.end_s + tolerance_s), None)
        if hit is None:
            out.false_accepts += 1
        else:
            matched[hit] = True
    scored = [i for i, e in enumerate(events) if e.label not in ignore]
    out.hits = sum(matched[i] for i in scored)
    out.misses = len(scored) - out.hits
    return out
