"""ELL-compatible featurizer (make_featurizer): config -> model graph -> frames.

Chain: [scale] -> [pre-emphasis FIR] -> frame buffer -> window -> |FFT| (or power) ->
[mel | linear filterbank] -> [log(x + delta)] -> [DCT]. The graph input is one hop of float
samples in [-1, 1); with auto_scale off, a scale node multiplies by 32768 (raw int16 units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from core.features import dsp
from core.graph.ir import Graph, chain

FILTERBANKS = ("mel", "linear", "none")


@dataclass(frozen=True)
class FeaturizerConfig:
    sample_rate: int = 16000
    window_size: int = 512
    hop_length: int = 512
    n_fft: int | None = None  # None: next power of two >= window_size
    filterbank: str = "mel"
    n_filters: int = 80
    log: bool = True
    log_delta: float = 1.0
    dct: bool = False
    power_spec: bool = False
    window: str = "hamming"
    preemphasis: float = 0.0  # 0 = off; ELL's --iir uses 0.97
    auto_scale: bool = True

    def __post_init__(self):
        for name in ("sample_rate", "window_size", "hop_length", "n_filters"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"featurizer {name} must be a positive integer, got {v!r}")
        if self.n_fft is not None and (self.n_fft <= 0 or self.n_fft & (self.n_fft - 1)):
            raise ValueError(f"featurizer n_fft must be a power of two, got {self.n_fft}")
        if self.filterbank not in FILTERBANKS:
            raise ValueError(f"featurizer filterbank must be one of {FILTERBANKS}, got {self.filterbank!r}")
        if self.window not in dsp.WINDOWS:
            raise ValueError(f"featurizer window must be one of {dsp.WINDOWS}, got {self.window!r}")
        if self.log and self.log_delta < 0:
            raise ValueError(f"featurizer log_delta must be >= 0, got {self.log_delta}")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ValueError(f"featurizer preemphasis must be in [0, 1), got {self.preemphasis}")

    @property
    def fft_size(self) -> int:
        return self.n_fft or dsp.next_pow2(self.window_size)

    @property
    def n_features(self) -> int:
        return self.n_filters if self.filterbank != "none" else self.fft_size // 2 + 1

    @property
    def frame_duration_s(self) -> float:
        return self.hop_length / self.sample_rate

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeaturizerConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def build_featurizer(cfg: FeaturizerConfig) -> Graph:
    n_fft = cfg.fft_size
    ops: list[tuple[str, dict, dict]] = [("input", {"size": cfg.hop_length}, {})]
    if not cfg.auto_scale:
        ops.append(("scale", {"factor": 32768.0}, {}))
    if cfg.preemphasis:
        ops.append(("iir", {"b": [1.0, -cfg.preemphasis], "a": [1.0]}, {}))
    ops.append(("frame_buffer", {"window_size": cfg.window_size}, {}))
    if cfg.window != "none":
        ops.append(("window", {"kind": cfg.window}, {}))
    ops.append(("fft_mag", {"n_fft": n_fft, "power": cfg.power_spec}, {}))
    if cfg.filterbank == "mel":
        w = dsp.mel_filterbank(cfg.n_filters, n_fft, cfg.sample_rate)
        ops.append(("filterbank", {"kind": "mel"}, {"weights": w}))
    elif cfg.filterbank == "linear":
        w = dsp.linear_filterbank(cfg.n_filters, n_fft, cfg.sample_rate)
        ops.append(("filterbank", {"kind": "linear"}, {"weights": w}))
    if cfg.log:
        ops.append(("log", {"delta": cfg.log_delta}, {}))
    if cfg.dct:
        ops.append(("dct", {}, {}))
    ops.append(("output", {}, {}))
    meta = {"kind": "featurizer", "sample_rate": cfg.sample_rate, "hop_length": cfg.hop_length,
            "featurizer": cfg.to_dict()}
    return chain(ops, meta, prefix="f")


def hops(samples: np.ndarray, hop_length: int) -> np.ndarray:
    """Split a signal into (frames, hop) blocks; a trailing partial hop is dropped (as ELL does)."""
    x = np.asarray(samples, dtype=np.float32)
    n = len(x) // hop_length
    return x[: n * hop_length].reshape(n, hop_length)


def featurize(graph: Graph, samples: np.ndarray) -> np.ndarray:
    """Whole clip at once, from a fresh state: (frames, n_features)."""
    from core.graph.interpreter import Interpreter

    rt = Interpreter(graph)
    blocks = hops(samples, rt.input_size)
    if len(blocks) == 0:
        return np.zeros((0, rt.output_size), np.float32)
    return rt.run(blocks)
