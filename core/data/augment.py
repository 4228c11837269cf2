"""Audio augmentation for datasets and training: the pure function `augment()`.

Steps of one augmented copy, in order (each only when enabled):

    speed -> pitch / VTLP -> time shift -> reverb -> babble -> noise -> microphone colouring
    (band limits, telephone band, peaking EQ) -> gain -> clip to [-1, 1]

- speed: band-limited resampling (duration and pitch move together).
- pitch / VTLP: Jaitly & Hinton's vocal tract length perturbation, a warp of the frequency axis by
  a factor alpha (f0, harmonics and formants move by alpha below a boundary at 0.3 x the sample
  rate; above it a straight line takes the rest of the band to Nyquist), done by a vectorised
  phase vocoder (STFT, warp magnitudes and instantaneous frequencies, integrate the phase), so
  the duration stays. About 2.4 ms of CPU per second of audio; librosa's pitch_shift (phase vocoder
  + resampling, what audiomentations' PitchShift calls) takes ~5.8 ms and is the tests' reference.
- reverb: room impulse responses simulated once per seed with pyroomacoustics (random shoebox
  rooms whose wall absorption gives an RT60 drawn from `rt60_s` by Sabine's formula; random
  source and microphone positions; image sources to order 3 plus ray tracing for the tail, which
  matches the requested RT60 where the full image method takes seconds per room), then one FFT
  convolution per clip. The RIRs start at the direct path and have unit energy, so reverb changes
  the level little and does not delay the word.
- babble: 1-5 other clips of the same split (the caller's `SpeechPool`, so no speaker of a held-out
  split leaks into training), each at a random offset overlapping the clip, at equal power, mixed
  at an SNR drawn from `babble_snr_db`; with reverb they pass through another room of the bank.
- noise: a random stretch of the noise recordings at an SNR drawn from `snr_db`.
- microphone: Butterworth high/low cuts (4th order) at random corners, the telephone band
  (300-3400 Hz), and 1..`eq_bands` peaking filters (RBJ cookbook) of random centre, gain and Q;
  designed here as biquads (4 us; scipy's butter takes 0.7 ms a call, 5x the filtering itself;
  the tests check that both give the same response).

SNR (noise and babble) is the ratio of the speech's power at the microphone - the clip after speed,
pitch, shift and reverb, over the clip's length - to the added sound's power over the same
samples. Babble and noise are each set against the speech alone. Colouring and gain come after
and act on the whole mixture, as a real microphone and amplifier would.

Everything draws from a caller-supplied `numpy.random.Generator`, and a step that is switched off
draws nothing, so a seed reproduces a dataset exactly, whatever the number of worker processes
(a configuration without the newer steps draws the same numbers as before they existed).

audiomentations 0.43 was measured and not used: on this busy 2-core machine its filters took
3-4 ms per clip (a scipy design per call) and its PitchShift 13-15 ms (wall clock), its reverb and
background-noise transforms read files and draw from Python's global RNG, and it pins soxr below
1.0 (the project's resampler needs soxr 1.x).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from core.audio.formats import FORMAT_NAMES, is_audio_name
from core.errors import DataError, KwsError


def parse_range(text: str | float | tuple, name: str) -> tuple[float, float]:
    """"LOW,HIGH" or a single value (LOW = HIGH) -> (low, high); ValueError names the option."""
    if isinstance(text, (tuple, list)):
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
    if len(vals) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
        raise ValueError(f"{name}: expected LOW,HIGH or one number, got {text!r}")
    lo, hi = vals
    if lo > hi:
        raise ValueError(f"{name}: LOW must not exceed HIGH, got {text!r}")
    return float(lo), float(hi)


TELEPHONE_HZ = (300.0, 3400.0)  # ITU-T G.712 channel band
VTLP_BOUNDARY = 0.3  # of the sample rate: 4.8 kHz at 16 kHz (Jaitly & Hinton's F_hi)
EQ_CENTRE_HZ = (100.0, 6000.0)  # peaking-filter centres, log-uniform (capped at 0.4 x the rate)
EQ_Q = (0.7, 2.5)
ROOM_HEIGHT_M = (2.4, 4.0)
WALL_MARGIN_M = 0.5  # source and microphone keep this far from the walls ...
MIN_DISTANCE_M = 0.5  # ... and from each other
WALL_SCATTERING = 0.1  # smooth walls; makes the field diffuse enough for Sabine's RT60 to hold (~10 %)

# name -> (lowest, highest) allowed; ranges are (LOW, HIGH) pairs within these
_RANGES = {
    "snr_db": (-math.inf, math.inf), "gain_db": (-math.inf, math.inf), "speed": (0.5, 2.0),
    "rt60_s": (0.1, 1.5), "room_m": (2.0, 30.0), "pitch_factor": (0.7, 1.4),
    "low_cut_hz": (0.0, 4000.0), "high_cut_hz": (500.0, 48000.0), "eq_gain_db": (-24.0, 24.0),
    "babble_snr_db": (-math.inf, math.inf), "babble_talkers": (1, 10),
}
_FRACTIONS = ("noise_fraction", "reverb_fraction", "pitch_fraction", "band_fraction", "telephone_fraction",
              "eq_fraction", "babble_fraction")


@dataclass(frozen=True)
class AugmentConfig:
    noise_fraction: float = 0.0  # probability that a copy gets noise
    snr_db: tuple[float, float] = (5.0, 20.0)  # speech-to-noise power ratio, drawn uniformly
    time_shift_ms: float = 0.0  # random shift in [-t, t], zero filled
    gain_db: tuple[float, float] = (0.0, 0.0)
    speed: tuple[float, float] = (1.0, 1.0)  # playback speed factor (pitch moves with it)
    copies: int = 0  # augmented copies per clip in addition to the clean one
    reverb_fraction: float = 0.0  # probability of room reverberation
    rt60_s: tuple[float, float] = (0.2, 0.8)  # reverberation time of the simulated rooms
    room_m: tuple[float, float] = (3.0, 10.0)  # floor side lengths of the rooms
    rooms: int = 32  # impulse responses simulated once per seed
    pitch_fraction: float = 0.0  # probability of a VTLP frequency warp
    pitch_factor: tuple[float, float] = (0.9, 1.1)  # warp factor alpha (f0 and formants x alpha)
    band_fraction: float = 0.0  # probability of random band limits
    low_cut_hz: tuple[float, float] = (50.0, 400.0)  # high-pass corner
    high_cut_hz: tuple[float, float] = (3000.0, 7500.0)  # low-pass corner (none at or above Nyquist)
    telephone_fraction: float = 0.0  # probability of the 300-3400 Hz telephone band
    eq_fraction: float = 0.0  # probability of microphone colouring by peaking filters
    eq_gain_db: tuple[float, float] = (-8.0, 8.0)
    eq_bands: int = 3  # 1..eq_bands peaking filters
    babble_fraction: float = 0.0  # probability of babble from other clips of the split
    babble_snr_db: tuple[float, float] = (5.0, 20.0)
    babble_talkers: tuple[int, int] = (1, 5)

    def __post_init__(self):
        for f in fields(self):  # JSON gives lists back: hold tuples of floats, so equality works
            v = getattr(self, f.name)
            if f.name in _RANGES:
                lo, hi = parse_range(v, f.name)
                if f.name == "babble_talkers" and not (lo.is_integer() and hi.is_integer()):
                    raise ValueError(f"babble talkers must be whole numbers, got {v!r}")
                object.__setattr__(self, f.name, (int(lo), int(hi)) if f.name == "babble_talkers" else (lo, hi))
        for name in _FRACTIONS:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name.replace('_', ' ')} must be in [0, 1], got {v!r}")
        if not (isinstance(self.time_shift_ms, (int, float)) and 0 <= self.time_shift_ms < math.inf):
            raise ValueError(f"time shift must be >= 0 ms, got {self.time_shift_ms}")
        for name, (lo_lim, hi_lim) in _RANGES.items():
            lo, hi = getattr(self, name)
            if not lo_lim <= lo <= hi <= hi_lim:
                what = "speed range" if name == "speed" else name.replace("_", " ")
                raise ValueError(f"{what} must lie within [{lo_lim}, {hi_lim}], got {(lo, hi)}")
        for name, top in (("copies", None), ("rooms", 1024), ("eq_bands", 8)):
            v = getattr(self, name)
            low = 0 if name == "copies" else 1
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low or (top and v > top):
                limit = f"in [{low}, {top}]" if top else "a non-negative integer"
                raise ValueError(f"augment {name.replace('_', ' ')} must be {limit}, got {v!r}")
        if self.low_cut_hz[1] >= self.high_cut_hz[0]:
            raise ValueError(f"low cut {self.low_cut_hz} Hz must lie below high cut {self.high_cut_hz} Hz")

    @property
    def active(self) -> bool:
        """Does any augmentation change the audio?"""
        return (any(getattr(self, n) > 0 for n in _FRACTIONS) or self.time_shift_ms > 0
                or self.gain_db != (0.0, 0.0) or self.speed != (1.0, 1.0))

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- sources: noise, speech, rooms

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


@dataclass(frozen=True, eq=False)
class SpeechPool:
    """The speech babble draws from: the clips of one split (never another split's speakers).

    Built from wav paths (read when drawn, so worker processes share nothing big) or from clips
    already in memory. A file that cannot be read is passed over."""

    paths: tuple[str, ...]
    sample_rate: int
    clips: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_clips(cls, clips, sample_rate: int) -> SpeechPool:
        arrays = tuple(np.asarray(c, dtype=np.float32) for c in clips)
        return cls(tuple(f"clip {i}" for i in range(len(arrays))), int(sample_rate), arrays)

    def __len__(self) -> int:
        return len(self.paths)

    def clip(self, i: int) -> np.ndarray | None:
        if self.clips is not None:
            return self.clips[i]
        from core.audio.wav import read_wav

        try:
            return read_wav(self.paths[i], self.sample_rate)[0]
        except KwsError:
            return None


@dataclass(frozen=True, eq=False)
class RoomBank:
    """Room impulse responses simulated once (per seed) by pyroomacoustics; `rir` picks one."""

    rirs: tuple[np.ndarray, ...]  # float32, direct path first, unit energy
    rt60_s: tuple[float, ...]  # the RT60 each room was designed for (Sabine)
    rt60_measured_s: tuple[float, ...]  # from each RIR's Schroeder decay (T20 extrapolated to 60 dB)
    rooms_m: tuple[tuple[float, float, float], ...]
    sample_rate: int

    @classmethod
    def simulate(cls, cfg: AugmentConfig, sample_rate: int, seed: int) -> RoomBank:
        rirs, rt, measured, dims = [], [], [], []
        for i in range(cfg.rooms):
            h, t60, d = simulate_rir(np.random.default_rng([int(seed), 0x5EB, i]), cfg.rt60_s, cfg.room_m,
                                     sample_rate)
            rirs.append(h)
            rt.append(t60)
            measured.append(measure_rt60(h, sample_rate))
            dims.append(d)
        return cls(tuple(rirs), tuple(rt), tuple(measured), tuple(dims), int(sample_rate))

    def __len__(self) -> int:
        return len(self.rirs)

    def summary(self) -> dict:
        return {"rooms": len(self), "rt60_s": [round(v, 3) for v in self.rt60_s],
                "rt60_measured_s": [round(v, 3) for v in self.rt60_measured_s],
                "rir_samples": [len(h) for h in self.rirs]}


def simulate_rir(rng: np.random.Generator, rt60_range: tuple[float, float], side_range: tuple[float, float],
                 sample_rate: int) -> tuple[np.ndarray, float, tuple[float, float, float]]:
    """One random shoebox room: (RIR, designed RT60, room dimensions). Deterministic per `rng`."""
    import pyroomacoustics as pra

    rt60 = float(rng.uniform(*rt60_range))
    dims = np.array([rng.uniform(*side_range), rng.uniform(*side_range), rng.uniform(*ROOM_HEIGHT_M)])
    # Sabine: absorption = 24 ln10 V / (c S RT60) must stay below 1; shrink a room too big for a short RT60
    while 24 * math.log(10) * np.prod(dims) / (343.0 * 2 * (dims[0] * dims[1] + dims[1] * dims[2]
                                                              + dims[0] * dims[2]) * rt60) > 0.95:
        dims = dims * 0.9
    absorption, _ = pra.inverse_sabine(rt60, dims)
    lo = np.full(3, WALL_MARGIN_M)
    for _ in range(100):
        src, mic = rng.uniform(lo, dims - lo), rng.uniform(lo, dims - lo)
        if np.linalg.norm(src - mic) >= MIN_DISTANCE_M:
            break
    pra.random.seed(numpy=int(rng.integers(2**63)), libroom=int(rng.integers(2**63)))
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(float(absorption), WALL_SCATTERING), max_order=3,
                       ray_tracing=True, air_absorption=False)
    room.set_ray_tracing(n_rays=2000, receiver_radius=0.5, energy_thres=1e-6)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    start = max(0, int(np.argmax(np.abs(h))) - pra.constants.get("frac_delay_length") // 2)
    h = h[start:]
    energy = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder: energy left from each sample on
    h = h[: max(1, int(np.searchsorted(-energy, -energy[0] * 1e-6)))]  # drop the tail below -60 dB
    h /= math.sqrt(float(np.sum(h ** 2)))
    return h.astype(np.float32), rt60, tuple(float(v) for v in dims)


def measure_rt60(h: np.ndarray, sample_rate: int) -> float:
    """RT60 of an impulse response from the -5..-25 dB slope of its Schroeder decay curve (T20 x 3)."""
    e = np.cumsum(np.asarray(h, np.float64)[::-1] ** 2)[::-1]
    db = 10 * np.log10(np.maximum(e / e[0], 1e-300))
    i5, i25 = int(np.argmax(db <= -5.0)), int(np.argmax(db <= -25.0))
    if i25 <= i5:
        return 0.0
    t = np.arange(i5, i25) / sample_rate
    slope = np.polyfit(t, db[i5:i25], 1)[0]  # dB per second
    return float(-60.0 / slope) if slope < 0 else math.inf


# ---------------------------------------------------------------- building blocks

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


def vtlp_warp(f: np.ndarray, alpha: float, nyquist: float, boundary: float) -> np.ndarray:
    """Jaitly & Hinton's VTLP warp of frequencies f (Hz): x alpha below the knee, linear to Nyquist."""
    knee = boundary * min(alpha, 1.0) / alpha
    slope = (nyquist - boundary * min(alpha, 1.0)) / (nyquist - knee)
    return np.where(f <= knee, f * alpha, nyquist - slope * (nyquist - f))


def _vtlp_unwarp(f: np.ndarray, alpha: float, nyquist: float, boundary: float) -> np.ndarray:
    """The inverse of vtlp_warp."""
    knee_out = boundary * min(alpha, 1.0)
    slope = (nyquist - knee_out) / (nyquist - knee_out / alpha)
    return np.where(f <= knee_out, f / alpha, nyquist - (nyquist - f) / slope)


def vtlp(x: np.ndarray, alpha: float, sample_rate: int, boundary_hz: float | None = None) -> np.ndarray:
    """Warp the frequency axis by `alpha` (VTLP), same length and power, by a phase vocoder.

    STFT (Hann, 32 ms, hop 1/4); every output bin takes the magnitude and the instantaneous
    frequency of the input at the unwarped frequency (linear interpolation), the frequency is
    warped, the phase is its running sum; weighted overlap-add. alpha = 1 gives x back. The
    spectra and phases are float32 (sin/cos of float64 cost 50x more); each phase step is wrapped
    to (-pi, pi] before the running sum, which stays below pi x frames (float32 keeps 1e-4 rad)."""
    from scipy import fft as sfft

    x32 = np.asarray(x, dtype=np.float32)
    if alpha == 1.0 or len(x32) == 0:
        return x32
    n_fft = 1 << max(6, round(math.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    nyq = sample_rate / 2
    boundary = VTLP_BOUNDARY * sample_rate if boundary_hz is None else boundary_hz
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    xp = np.pad(x32, (n_fft, n_fft + hop - len(x32) % hop))
    spec = sfft.rfft(np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop] * win, axis=1)
    mag, phase = np.abs(spec), np.angle(spec)
    k = np.arange(spec.shape[1])
    omega = (2 * np.pi * k / n_fft).astype(np.float32)  # bin centres, radians per sample
    dphi = np.diff(phase, axis=0) - omega * hop
    dphi -= np.float32(2 * np.pi) * np.round(dphi / np.float32(2 * np.pi))
    inst = np.vstack([omega[None, :], omega + dphi / hop])  # instantaneous frequency, rad/sample
    src = _vtlp_unwarp(k * sample_rate / n_fft, alpha, nyq, boundary) * n_fft / sample_rate
    i0 = np.clip(np.floor(src).astype(int), 0, len(k) - 2)
    fr = (src - i0).astype(np.float32)
    mag_w = mag[:, i0] * (1 - fr) + mag[:, i0 + 1] * fr
    inst_hz = (inst[:, i0] * (1 - fr) + inst[:, i0 + 1] * fr) * np.float32(sample_rate / (2 * np.pi))
    inst_w = np.sign(inst_hz) * vtlp_warp(np.abs(inst_hz), alpha, nyq, boundary) * (2 * np.pi / sample_rate)
    step = (inst_w[1:] * hop).astype(np.float32)
    step -= np.float32(2 * np.pi) * np.round(step / np.float32(2 * np.pi))  # |running sum| < pi * frames
    ph = np.cumsum(np.vstack([phase[0, np.rint(src).astype(int).clip(0, len(k) - 1)][None, :], step]), axis=0)
    spec = np.empty_like(spec)
    spec.real, spec.imag = mag_w * np.cos(ph), mag_w * np.sin(ph)
    out = sfft.irfft(spec, n=n_fft, axis=1) * win
    y = np.zeros(len(xp))
    for j in range(4):  # overlap-add in four vectorised strides of one hop
        part = out[:, j * hop: (j + 1) * hop].reshape(-1)
        y[j * hop: j * hop + len(part)] += part[: len(y) - j * hop]
    # every kept sample lies under four frames, whose squared windows sum to sum(win^2) / hop (1.5)
    y = y[n_fft: n_fft + len(x32)] * (hop / float(np.sum(win.astype(np.float64) ** 2)))
    p_in, p_out = power(x32), power(y)
    if p_out > 0:
        y *= math.sqrt(p_in / p_out)
    return y.astype(np.float32)


def butterworth_sos(order: int, cutoff_hz: float, kind: str, sample_rate: int) -> np.ndarray:
    """Digital Butterworth high- or low-pass (even order) as biquads: RBJ cookbook sections with
    Butterworth pole Qs, prewarped at the corner - the response of scipy.signal.butter."""
    w0 = 2 * np.pi * cutoff_hz / sample_rate
    cos, sin = math.cos(w0), math.sin(w0)
    rows = []
    for i in range(order // 2):
        q = 1.0 / (2 * math.cos(math.pi * (2 * i + 1) / (2 * order)))
        a = sin / (2 * q)
        if kind == "lowpass":
            b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2]
        else:
            b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        den = [1 + a, -2 * cos, 1 - a]
        rows.append([v / den[0] for v in b] + [1.0, den[1] / den[0], den[2] / den[0]])
    return np.array(rows)


def peaking_sos(centre_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One peaking-EQ biquad (W3C Audio EQ Cookbook): gain_db at the centre, 0 dB far from it."""
    w0 = 2 * np.pi * centre_hz / sample_rate
    amp, a = 10 ** (gain_db / 40), math.sin(w0) / (2 * q)
    b = [1 + a * amp, -2 * math.cos(w0), 1 - a * amp]
    den = [1 + a / amp, -2 * math.cos(w0), 1 - a / amp]
    return np.array([[v / den[0] for v in b] + [1.0, den[1] / den[0], den[2] / den[0]]])


def _microphone(rng: np.random.Generator, cfg: AugmentConfig, sample_rate: int) -> tuple[np.ndarray | None, list]:
    """The colouring of one copy as biquads (None: none drawn) and the names of what was drawn."""
    nyq, sos, steps = sample_rate / 2, [], []
    if cfg.band_fraction > 0 and rng.random() < cfg.band_fraction:
        lo, hi = float(rng.uniform(*cfg.low_cut_hz)), float(rng.uniform(*cfg.high_cut_hz))
        if 0 < lo < 0.45 * sample_rate:
            sos.append(butterworth_sos(4, lo, "highpass", sample_rate))
        if hi < 0.95 * nyq:
            sos.append(butterworth_sos(4, hi, "lowpass", sample_rate))
        steps.append(f"band {lo:.0f}-{hi:.0f} Hz")
    if cfg.telephone_fraction > 0 and rng.random() < cfg.telephone_fraction:
        lo, hi = TELEPHONE_HZ
        sos.append(butterworth_sos(4, lo, "highpass", sample_rate))
        if hi < 0.95 * nyq:
            sos.append(butterworth_sos(4, hi, "lowpass", sample_rate))
        steps.append("telephone")
    if cfg.eq_fraction > 0 and rng.random() < cfg.eq_fraction:
        top = min(EQ_CENTRE_HZ[1], 0.4 * sample_rate)
        for _ in range(int(rng.integers(1, cfg.eq_bands + 1))):
            centre = float(np.exp(rng.uniform(math.log(EQ_CENTRE_HZ[0]), math.log(top))))
            sos.append(peaking_sos(centre, float(rng.uniform(*cfg.eq_gain_db)), float(rng.uniform(*EQ_Q)),
                                   sample_rate))
        steps.append("eq")
    return (np.vstack(sos) if sos else None), steps


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy.signal import oaconvolve

    return oaconvolve(np.asarray(x, np.float64), h.astype(np.float64))[: len(x)]


def _babble(rng: np.random.Generator, cfg: AugmentConfig, pool: SpeechPool, n: int,
            exclude: int | None) -> np.ndarray | None:
    """The sum of 1..N other clips of the pool at equal power, each overlapping the n samples."""
    others = len(pool) - (exclude is not None and 0 <= exclude < len(pool))
    talkers = min(int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1)), others)
    if talkers <= 0:
        return None
    picks = rng.choice(others, size=talkers, replace=False)
    if exclude is not None and 0 <= exclude < len(pool):
        picks = np.where(picks >= exclude, picks + 1, picks)
    out = np.zeros(n)
    for i in picks:
        c = pool.clip(int(i))
        if c is None or len(c) == 0:
            continue
        at = int(rng.integers(-(len(c) // 2), n - len(c) // 2 + 1))  # at least half of it overlaps
        seg = np.zeros(n)
        a, b = max(at, 0), min(at + len(c), n)
        if b > a:
            seg[a:b] = c[a - at: b - at]
        p = power(seg)
        if p > 0:
            out += seg / math.sqrt(p)
    return out if power(out) > 0 else None


# ---------------------------------------------------------------- the entry points

@dataclass(frozen=True)
class Augmented:
    samples: np.ndarray  # the augmented clip, float32
    noise_tail: np.ndarray | None  # the same noise, same colouring and gain, continuing past the end
    snr_db: float | None  # noise SNR (None: no noise)
    babble_snr_db: float | None = None
    speech: np.ndarray | None = None  # the speech at the microphone (the SNRs' reference), float64
    steps: tuple[str, ...] = ()  # what was applied, in order
    room: int | None = None  # index of the room in the RoomBank (None: no reverb)


def _check_sources(cfg: AugmentConfig, noise, pool, rooms, sample_rate: int) -> None:
    """A step switched on without what it draws from would silently do nothing: refuse it."""
    for need, have, what in ((cfg.noise_fraction, noise, "noise recordings (NoiseBank)"),
                             (cfg.babble_fraction, pool, "a SpeechPool of the same split"),
                             (cfg.reverb_fraction, rooms, "a RoomBank (RoomBank.simulate(config, rate, seed))")):
        if need > 0 and have is None:
            raise ValueError(f"augmentation with a fraction of {need} needs {what}")
    for src in (pool, rooms):
        if src is not None and src.sample_rate != sample_rate:
            raise ValueError(f"{type(src).__name__} is at {src.sample_rate} Hz, the clip at {sample_rate} Hz")


def augment_copy(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, noise: NoiseBank | None = None,
                 pool: SpeechPool | None = None, *, sample_rate: int, rooms: RoomBank | None = None,
                 tail: int = 0, exclude: int | None = None) -> Augmented:
    """One augmented copy of clip `x`, with what it is made of (see the module docstring).

    `tail` extra noise samples are returned for padding rows past the clip's end; `exclude` is
    x's own index in `pool` (babble never mixes a clip with itself)."""
    _check_sources(cfg, noise, pool, rooms, sample_rate)
    y = np.asarray(x, dtype=np.float32)
    steps: list[str] = []
    if cfg.speed != (1.0, 1.0):
        y = change_speed(y, float(rng.uniform(*cfg.speed)))
        steps.append("speed")
    if cfg.pitch_fraction > 0 and rng.random() < cfg.pitch_fraction:
        y = vtlp(y, float(rng.uniform(*cfg.pitch_factor)), sample_rate)
        steps.append("pitch")
    if cfg.time_shift_ms > 0:
        limit = int(round(cfg.time_shift_ms * sample_rate / 1000.0))
        y = time_shift(y, int(rng.integers(-limit, limit + 1)))
    room = None
    if rooms is not None and cfg.reverb_fraction > 0 and rng.random() < cfg.reverb_fraction:
        room = int(rng.integers(len(rooms)))
        y = _convolve(y, rooms.rirs[room]).astype(np.float32)
        steps.append("reverb")
    speech = y.astype(np.float64)
    mix = speech.copy()
    babble_snr = None
    if pool is not None and cfg.babble_fraction > 0 and rng.random() < cfg.babble_fraction:
        b = _babble(rng, cfg, pool, len(y), exclude)
        if b is not None and room is not None:  # the other talkers are in a room too
            b = _convolve(b, rooms.rirs[int(rng.integers(len(rooms)))])
        snr = float(rng.uniform(*cfg.babble_snr_db))
        g = noise_gain(power(speech), power(b), snr) if b is not None else 0.0
        if g > 0:
            mix += g * b
            babble_snr = snr
            steps.append("babble")
    snr_noise = None
    noise_tail = None
    if noise is not None and cfg.noise_fraction > 0 and rng.random() < cfg.noise_fraction:
        snr = float(rng.uniform(*cfg.snr_db))
        seg = noise.segment(rng, len(y) + tail).astype(np.float64)
        g = noise_gain(power(speech), power(seg[: len(y)]), snr)
        if g > 0:  # a silent clip has no SNR: leave it clean
            mix += g * seg[: len(y)]
            noise_tail = g * seg[len(y):]
            snr_noise = snr
            steps.append("noise")
    sos, mic = _microphone(rng, cfg, sample_rate)
    if sos is not None:
        from scipy.signal import sosfilt

        both = sosfilt(sos, mix if noise_tail is None else np.concatenate([mix, noise_tail]))
        mix, noise_tail = both[: len(mix)], (None if noise_tail is None else both[len(mix):])
        steps += mic
    if cfg.gain_db != (0.0, 0.0):
        g = 10.0 ** (rng.uniform(*cfg.gain_db) / 20.0)
        mix = mix * g
        noise_tail = None if noise_tail is None else noise_tail * g
    out = np.clip(mix, -1.0, 1.0).astype(np.float32)
    if noise_tail is not None:
        noise_tail = np.clip(noise_tail, -1.0, 1.0).astype(np.float32)
    return Augmented(out, noise_tail, snr_noise, babble_snr, speech, tuple(steps), room)


def augment(samples: np.ndarray, rng: np.random.Generator, config: AugmentConfig, noise: NoiseBank | None = None,
            pool: SpeechPool | None = None, *, sample_rate: int, rooms: RoomBank | None = None,
            exclude: int | None = None) -> np.ndarray:
    """One augmented copy of a clip (float32): what the dataset builder makes per copy, for
    callers that augment on the fly (a trainer). `rooms`: RoomBank.simulate(config, rate, seed)
    once; `pool`: clips of the same split; `exclude`: this clip's index in the pool."""
    return augment_copy(samples, rng, config, noise, pool, sample_rate=sample_rate, rooms=rooms,
                        exclude=exclude).samples
