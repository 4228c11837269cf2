"""Offline speech engines behind one small interface (like torchaudio's audio backends).

    eng = engine("flite")
    if eng.available():
        speech = eng.synthesize("seven", "slt", rate=1.2, pitch=0.9)   # Speech(samples, sample_rate)
    else:
        print(eng.missing())                                          # what to install

Every engine runs its synthesizer as a separate process (espeak-ng, flite and Piper are GPL; festival
too runs as a program): the short-lived `espeak-ng` / `flite` processes per utterance, one long-lived
`festival --pipe` and one Piper worker (`python -m core.data.speech.piper_worker`) per calling
thread, since loading their voices costs far more than one word. `close()` ends them.

Common controls, one meaning for every engine:
- `rate`: speaking-rate factor (1 = the voice's own pace, 1.25 = 25 % faster, so ~0.8x as long);
- `pitch`: factor on the voice's fundamental frequency (1 = its own; 1.12 = two semitones up);
- `seed`: the random draws of engines that sample (Piper's noise), so a take is reproducible.
Where an engine offers no pitch control for a voice, the pitch comes from resampling: the engine
speaks `pitch` times slower and its samples are declared to be at `pitch` times their rate, which
raises f0 and formants together (a shorter or longer vocal tract, like VTLP) and restores the
duration. `pitch_control(voice)` says which ("engine" or "resampling").

Samples come back at the rate the engine synthesizes at (`Speech.sample_rate`); resampling to a
dataset's rate is the caller's one step (core.data.synth).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

ENGINE_NAMES = ("espeak", "flite", "festival", "piper")
RATE_RANGE = (0.5, 2.0)
PITCH_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # (n,) float32 mono in [-1, 1]
    sample_rate: int


def check_controls(rate: float, pitch: float) -> None:
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ValueError(f"rate must be a factor in [{RATE_RANGE[0]}, {RATE_RANGE[1]}], got {rate}")
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise ValueError(f"pitch must be a factor in [{PITCH_RANGE[0]}, {PITCH_RANGE[1]}], got {pitch}")


def relabel_rate(sample_rate: int, pitch: float) -> int:
    """The rate to declare for pitch-by-resampling: `pitch` x the real rate, on a 50 Hz grid (< 0.3 %
    pitch error at 16 kHz) so the later polyphase resampling has a small up/down ratio."""
    return int(round(sample_rate * pitch / 50.0)) * 50


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


class Engine:
    """One offline synthesizer. Subclasses set `name`, `install` and implement `_missing`, `_voices`,
    `_synthesize`; everything is discovered when first asked, never at import."""

    name: str = ""
    install: str = ""  # the command that installs what is missing
    description: str = ""
    stochastic: bool = False  # True: each seed gives another take of the same setting

    def __init__(self):
        self._lock = threading.Lock()
        self._missing_cache: tuple[str | None] | None = None
        self._voices_cache: tuple[str, ...] | None = None

    # -- discovery
    def missing(self) -> str | None:
        """None when the engine works here, else what is missing and how to install it."""
        with self._lock:
            if self._missing_cache is None:
                why = self._missing()
                self._missing_cache = (f"{why} (install: {self.install})" if why else None,)
        return self._missing_cache[0]

    def available(self) -> bool:
        return self.missing() is None

    def voices(self) -> tuple[str, ...]:
        """The voices that synthesize here (empty when the engine is missing). `missing()` is cheap (a
        program or package lookup); this may run the synthesizer, and raises DataError when it has
        no usable voice."""
        if not self.available():
            return ()
        with self._lock:
            if self._voices_cache is None:
                self._voices_cache = tuple(self._voices())
        return self._voices_cache

    def pitch_control(self, voice: str) -> str:
        """"engine" when the synthesizer sets f0 itself, "resampling" when it is shifted afterwards."""
        return "engine"

    def speaker(self, voice: str) -> str:
        """The speaker id of a voice in file names (before `_nohash_`): engine + voice."""
        return f"{self.name}-{slug(voice)}"

    # -- synthesis
    def synthesize(self, text: str, voice: str, *, rate: float = 1.0, pitch: float = 1.0,
                   seed: int = 0) -> Speech:
        """`text` spoken by `voice`; raises DataError naming the engine, voice and problem."""
        from core.errors import DataError

        check_controls(rate, pitch)
        why = self.missing()
        if why:
            raise DataError(f"{self.name}: {why}")
        if voice not in self.voices():
            raise DataError(f"{self.name}: unknown voice {voice!r} (voices: {', '.join(self.voices()[:12])}"
                            f"{' ...' if len(self.voices()) > 12 else ''})")
        if self.pitch_control(voice) == "resampling":
            s = self._synthesize(text, voice, rate / pitch, 1.0, seed)
            return Speech(s.samples, relabel_rate(s.sample_rate, pitch))
        return self._synthesize(text, voice, rate, pitch, seed)

    def close(self) -> None:
        """End any long-lived synthesizer processes (safe to call twice)."""

    # -- subclass hooks
    def _missing(self) -> str | None:
        raise NotImplementedError

    def _voices(self) -> list[str]:
        raise NotImplementedError

    def _synthesize(self, text: str, voice: str, rate: float, pitch: float, seed: int) -> Speech:
        raise NotImplementedError


def engine(name: str) -> Engine:
    """A fresh engine object by name (espeak, flite, festival, piper)."""
    if name == "espeak":
        from core.data.speech.espeak import Espeak as cls
    elif name == "flite":
        from core.data.speech.flite import Flite as cls
    elif name == "festival":
        from core.data.speech.festival import Festival as cls
    elif name == "piper":
        from core.data.speech.piper import Piper as cls
    else:
        raise ValueError(f"unknown speech engine {name!r} (engines: {', '.join(ENGINE_NAMES)})")
    return cls()


def engines(names=ENGINE_NAMES) -> list[Engine]:
    return [engine(n) for n in names]
