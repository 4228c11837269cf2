"""VAD parameter sets as data: the seven tuning parameters (VadConfig) plus when to reset
(ResetConfig), read from and written to one flat JSON object that `kws add-vad`, `kws vad`,
`kws eval --vad-params` and the GUI sliders all understand:

    {"tau_up": 1.54, "tau_down": 0.074326, ..., "level_threshold": 0.007885,
     "reset_on": "offset", "hold_frames": 0, "tuning": {...provenance, ignored on load...}}

Keys left out take the defaults (ELL's); unknown keys are an error naming them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from core.errors import DataError
from core.features.vad import ResetConfig, VadConfig
from core.fsutil import write_text_atomic

PARAM_NAMES = tuple(f.name for f in fields(VadConfig))
RESET_NAMES = ("reset_on", "hold_frames")
_INFO_KEYS = ("tuning", "comment", "format")


@dataclass(frozen=True)
class VadParams:
    """Everything a VAD node needs besides its frame timing."""

    vad: VadConfig = field(default_factory=VadConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)

    def to_dict(self) -> dict:
        return self.vad.to_dict() | self.reset.to_dict()

    @classmethod
    def from_dict(cls, d: dict, base: VadParams | None = None) -> VadParams:
        """Keys present override `base` (default: ELL's defaults); bad values raise ValueError."""
        base = base or cls()
        unknown = sorted(set(d) - set(PARAM_NAMES) - set(RESET_NAMES) - set(_INFO_KEYS))
        if unknown:
            raise ValueError(f"unknown VAD parameter(s): {', '.join(unknown)} (known: "
                             f"{', '.join(PARAM_NAMES + RESET_NAMES)})")
        vals = {}
        for k in PARAM_NAMES:
            if k in d:
                v = d[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"VAD parameter {k} must be a number, got {v!r}")
                vals[k] = float(v)
        vad = VadConfig(**(base.vad.to_dict() | vals))
        reset = ResetConfig.from_dict(base.reset.to_dict() | {k: d[k] for k in RESET_NAMES if k in d})
        return cls(vad, reset)

    def with_values(self, **kw) -> VadParams:
        """A copy with some of the seven parameters and/or reset options changed (validated)."""
        v = {k: kw.pop(k) for k in list(kw) if k in PARAM_NAMES}
        r = {k: kw.pop(k) for k in list(kw) if k in RESET_NAMES}
        if kw:
            raise ValueError(f"unknown VAD parameter(s): {', '.join(sorted(kw))}")
        return VadParams(replace(self.vad, **v), replace(self.reset, **r))


def load_params(path: str | os.PathLike, base: VadParams | None = None) -> VadParams:
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"), parse_constant=lambda c: math.nan)
    except OSError as e:
        raise DataError(f"{p}: cannot read VAD parameters: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: not a JSON file of VAD parameters ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{p}: VAD parameters must be a JSON object, got {type(d).__name__}")
    try:
        return VadParams.from_dict(d, base)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def save_params(path: str | os.PathLike, params: VadParams, info: dict | None = None) -> None:
    d = params.to_dict()
    if info:
        d["tuning"] = info
    write_text_atomic(path, json.dumps(d, indent=1) + "\n")
