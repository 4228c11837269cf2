"""ELL's voice activity detector, exactly: C-message weighted level + adaptive noise floor.

Works on feature vectors (one per frame), not on raw audio. The tracker runs in float64 like
ELL's reference so that ../shared/data/ell_examples/VadData.txt reproduces bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

# C-message weighting (dB) at 60, 100, 200, ..., 4000 Hz.
_CMSG_HZ = np.array([60] + list(range(100, 4001, 100)), dtype=np.float64)
_CMSG_DB = np.array([
    -54.65, -41.71, -25.17, -16.64, -11.29, -7.55, -4.75, -2.66, -1.19, -0.32, 0.03, 0.03, -0.17,
    -0.44, -0.71, -0.94, -1.12, -1.24, -1.32, -1.36, -1.38, -1.39, -1.41, -1.44, -1.50, -1.60,
    -1.76, -1.97, -2.26, -2.62, -3.09, -3.66, -4.35, -5.18, -6.18, -7.36, -8.75, -10.36, -12.12,
    -13.72, -14.43,
])  # fmt: skip
_MAX_HZ = 4000.0
RESET_ON = ("offset", "onset")


@dataclass(frozen=True)
class VadConfig:
    """The seven tuning parameters of ELL's VAD (defaults are ELL's)."""

    tau_up: float = 1.54
    tau_down: float = 0.074326
    large_input: float = 2.40016
    gain_att: float = 0.002885
    threshold_up: float = 3.552713
    threshold_down: float = 0.931252
    level_threshold: float = 0.007885

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"VAD parameter {f.name} must be a finite number, got {v!r}")
        for name in ("tau_up", "tau_down", "large_input", "threshold_up"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VAD parameter {name} must be positive, got {getattr(self, name)}")
        for name in ("gain_att", "threshold_down", "level_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAD parameter {name} must not be negative, got {getattr(self, name)}")
        if self.threshold_down > self.threshold_up:
            raise ValueError(
                f"VAD parameter threshold_down ({self.threshold_down}) must not exceed "
                f"threshold_up ({self.threshold_up})"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VadConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown VAD parameter(s): {', '.join(sorted(unknown))}")
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass(frozen=True)
class ResetConfig:
    """When the VAD resets recurrent state.

    The VAD's 0/1 signal first gets a hangover of `hold_frames` (it stays on that many frames
    after the voice ends). reset_on "offset" (ELL, with hold_frames 0) resets when that signal
    goes 1 -> 0; "onset" resets when it goes 0 -> 1, i.e. at the start of a word that follows at
    least `hold_frames` frames of silence. The reset happens after that frame's output.
    """

    reset_on: str = "offset"
    hold_frames: int = 0

    def __post_init__(self):
        if self.reset_on not in RESET_ON:
            raise ValueError(f"VAD reset_on must be one of {RESET_ON}, got {self.reset_on!r}")
        h = self.hold_frames
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 0 <= h <= 10000:
            raise ValueError(f"VAD hold_frames must be an integer in [0, 10000], got {h!r}")

    @property
    def is_ell(self) -> bool:
        return self.reset_on == "offset" and self.hold_frames == 0

    def to_dict(self) -> dict:
        return {"reset_on": self.reset_on, "hold_frames": int(self.hold_frames)}

    @classmethod
    def from_dict(cls, d: dict) -> ResetConfig:
        hold = d.get("hold_frames", 0)
        if isinstance(hold, float) and hold.is_integer():
            hold = int(hold)
        return cls(str(d.get("reset_on", "offset")), hold)


def reset_trigger(signals: np.ndarray, reset: ResetConfig, hang: int = 0) -> tuple[np.ndarray, int]:
    """The trigger a VAD node emits for its 0/1 `signals`: (trigger, hangover frames left).

    With the hangover h (h_t = hold_frames when the voice is on, else max(h_{t-1} - 1, 0)), the
    held signal is d_t = s_t or h_{t-1} > 0; the trigger is d ("offset") or 1 - d ("onset"):
    recurrent layers reset on its 1 -> 0 edges. `hang` carries the state between calls.
    """
    out = np.empty(len(signals), np.int32)
    n = int(reset.hold_frames)
    for i, s in enumerate(np.asarray(signals).reshape(-1)):
        on = s != 0
        out[i] = 1 if on or hang > 0 else 0
        hang = n if on else max(hang - 1, 0)
    if reset.reset_on == "onset":
        out = 1 - out
    return out, hang


def cmessage_weights(n_features: int) -> np.ndarray:
    """Power weights per feature bin; bin i sits at i*4000/N Hz; nothing at or below 60 Hz."""
    freqs = np.arange(n_features, dtype=np.float64) * (_MAX_HZ / n_features)
    w = np.zeros(n_features)
    for i, f in enumerate(freqs):
        above = np.nonzero(f > _CMSG_HZ)[0]
        k = 0 if len(above) == 0 else above[-1] + 1
        if k == 0:
            db = 0.0
        elif k >= len(_CMSG_HZ):
            db = _CMSG_DB[-1]
        else:
            x1, x2, y1, y2 = _CMSG_HZ[k - 1], _CMSG_HZ[k], _CMSG_DB[k - 1], _CMSG_DB[k]
            db = y1 + (y2 - y1) * (f - x1) / (x2 - x1)
        if db != 0.0:
            w[i] = (10.0 ** (db / 20.0)) ** 2
    return w


class VadTracker:
    """Streaming state of one VAD: call `process(features)` once per frame."""

    def __init__(self, config: VadConfig, n_features: int, frame_duration_s: float):
        self.config = config
        self.n_features = n_features
        self.frame_duration_s = float(frame_duration_s)
        self.weights = cmessage_weights(n_features)
        self.reset()

    def reset(self) -> None:
        self.floor = 0.1
        self.last_time = 0.0
        self.signal = 0
        self.frame = 0

    def level(self, features: np.ndarray) -> float:
        return float(np.dot(np.asarray(features, dtype=np.float64), self.weights)) / self.n_features

    def step(self, level: float) -> int:
        c = self.config
        t = self.frame * self.frame_duration_s
        self.frame += 1
        dt = t - self.last_time
        floor = self.floor
        if level < floor:
            floor = max(floor + dt / c.tau_down * (level - floor), level)
        elif level > c.large_input * floor:
            floor = min(floor + c.gain_att * dt / c.tau_up * (level - floor), level)
        else:
            floor = min(floor + dt / c.tau_up * (level - floor), level)
        if level > c.threshold_up * floor and level > c.level_threshold:
            self.signal = 1
        if level < c.threshold_down * floor:
            self.signal = 0
        self.floor = floor
        self.last_time = t
        return self.signal

    def process(self, features: np.ndarray) -> int:
        return self.step(self.level(features))

    def trace(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run over (T, n_features) frames: (levels, floors, signals)."""
        frames = np.asarray(frames, dtype=np.float64)
        levels = frames @ self.weights / self.n_features
        floors = np.empty(len(frames))
        signals = np.empty(len(frames), dtype=np.int32)
        for i, lv in enumerate(levels):
            signals[i] = self.step(float(lv))
            floors[i] = self.floor
        return levels, floors, signals
