"""What the VAD sees and decides over a clip (ELL's vad_test): per-frame level, noise floor,
0/1 signal, reset trigger, and the voice segments with start/end times.

The level is linear in the features, so it is computed once for all frames; the tracker over
precomputed levels (`signals_from_levels`) is a tight scalar loop doing exactly what
core.features.vad.VadTracker does, operation for operation, so results are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.features.vad import VadConfig, cmessage_weights, reset_trigger
from core.vad.params import VadParams


def levels_of(features: np.ndarray) -> np.ndarray:
    """C-message weighted level per frame: (T, n_features) -> (T,) float64."""
    x = np.asarray(features, dtype=np.float64)
    n = x.shape[1]
    return x @ cmessage_weights(n) / n


def signals_from_levels(levels: np.ndarray, vad: VadConfig, frame_duration_s: float,
                        floors: np.ndarray | None = None) -> np.ndarray:
    """The 0/1 VAD signal for precomputed levels, from the initial state (int8). When `floors`
    (a float64 array as long as `levels`) is given, the noise floor is written into it."""
    tau_up, tau_down, large, gain = vad.tau_up, vad.tau_down, vad.large_input, vad.gain_att
    th_up, th_down, lv_th = vad.threshold_up, vad.threshold_down, vad.level_threshold
    fd = float(frame_duration_s)
    out = np.empty(len(levels), np.int8)
    floor, last, signal = 0.1, 0.0, 0
    for i, level in enumerate(levels.tolist()):
        t = i * fd
        dt = t - last
        if level < floor:
            floor = max(floor + dt / tau_down * (level - floor), level)
        elif level > large * floor:
            floor = min(floor + gain * dt / tau_up * (level - floor), level)
        else:
            floor = min(floor + dt / tau_up * (level - floor), level)
        if level > th_up * floor and level > lv_th:
            signal = 1
        if level < th_down * floor:
            signal = 0
        last = t
        out[i] = signal
        if floors is not None:
            floors[i] = floor
    return out


def segments(signals: np.ndarray, frame_duration_s: float) -> list[tuple[float, float]]:
    """Runs of 1 as (start_s, end_s): frame k spans [k, k + 1) * frame duration."""
    s = np.concatenate([[0], np.asarray(signals).reshape(-1) != 0, [0]]).astype(np.int8)
    d = np.diff(s)
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    return [(a * frame_duration_s, b * frame_duration_s) for a, b in zip(starts.tolist(), ends.tolist())]


def reset_frames(trigger: np.ndarray) -> np.ndarray:
    """Frames after whose output the recurrent state is zeroed: the trigger's 1 -> 0 edges."""
    t = np.asarray(trigger).reshape(-1)
    return np.nonzero((t[:-1] != 0) & (t[1:] == 0))[0] + 1


@dataclass(frozen=True)
class VadTrace:
    """Per-frame VAD internals over one clip or stream."""

    levels: np.ndarray  # (T,) float64
    floors: np.ndarray  # (T,) float64
    signals: np.ndarray  # (T,) 0/1 voice
    trigger: np.ndarray  # (T,) what the VAD node emits (== signals for ELL's offset reset)
    frame_duration_s: float
    params: VadParams

    @property
    def segments(self) -> list[tuple[float, float]]:
        return segments(self.signals, self.frame_duration_s)

    @property
    def resets(self) -> np.ndarray:
        return reset_frames(self.trigger)

    def to_dict(self) -> dict:
        return {
            "frame_duration_s": self.frame_duration_s, "params": self.params.to_dict(),
            "segments": [{"start_s": a, "end_s": b} for a, b in self.segments],
            "reset_frames": self.resets.tolist(),
            "frames": {"level": self.levels.tolist(), "floor": self.floors.tolist(),
                       "signal": self.signals.astype(int).tolist(),
                       "trigger": self.trigger.astype(int).tolist()},
        }


def trace_features(features: np.ndarray, params: VadParams, frame_duration_s: float) -> VadTrace:
    levels = levels_of(features)
    floors = np.empty(len(levels))
    sig = signals_from_levels(levels, params.vad, frame_duration_s, floors)
    trig = sig if params.reset.is_ell else reset_trigger(sig, params.reset)[0]
    return VadTrace(levels, floors, sig, np.asarray(trig, np.int8), float(frame_duration_s), params)
