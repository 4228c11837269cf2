"""Spoken keywords from the offline speech engines (core.data.speech), in Speech Commands layout.

Every voice of every chosen engine (espeak-ng voices x variants, flite, festival, Piper) x speaking
rates x pitches (x takes, for engines that sample: Piper). Each utterance is resampled to the
dataset rate (core.audio.resample), trimmed of leading and trailing silence (frames below
`trim_db` re the loudest 10 ms frame) and centred in a 1 s clip of silence:

    DIR/<word>/<engine>-<voice>_nohash_<n>.wav      e.g. flite-slt_nohash_7.wav, espeak-en-us-klatt3_nohash_0.wav

The speaker id (before `_nohash_`) is engine + voice, so the speaker split of `kws lists` keeps each
synthetic voice within one split; n numbers the (rate, pitch, take) combination. With `per_word`,
each word gets that many utterances drawn at random (seeded) and spread evenly over the engines (an
engine with fewer combinations gives all it has, the others the rest). To train on synthetic and
real speech together, give `kws lists` both folders:
    kws synth --words yes,no -o synth/ && kws lists real/ synth/ -o lists/
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.data.speech import ENGINE_NAMES, Engine, check_controls, engine
from core.errors import DataError
from core.progress import Cancelled, check_cancel

_WORD = re.compile(r"^[A-Za-z][A-Za-z' -]*$")


@dataclass(frozen=True)
class SynthConfig:
    per_word: int | None = None  # None: every combination
    engines: tuple[str, ...] | None = None  # None: every engine found here
    rates: tuple[float, ...] = (0.8, 0.9, 1.0, 1.12, 1.25)  # speaking-rate factors
    pitches: tuple[float, ...] = (0.85, 0.92, 1.0, 1.08, 1.17)  # f0 factors (~ -3 to +3 semitones)
    takes: int = 3  # draws per (voice, rate, pitch) for engines that sample (Piper)
    use_variants: bool = True  # espeak-ng voice variants (+klatt3, +whisper, ...)
    voices: tuple[str, ...] | None = None  # only these voices (any engine's; an espeak code keeps its variants)
    seed: int = 0
    sample_rate: int = 16000
    duration_s: float = 1.0
    trim_db: float = -40.0

    def __post_init__(self):
        if self.per_word is not None and self.per_word < 1:
            raise ValueError(f"per word must be >= 1, got {self.per_word}")
        if self.engines is not None:
            bad = [e for e in self.engines if e not in ENGINE_NAMES]
            if bad or not self.engines:
                raise ValueError(f"unknown engines {bad or '(none)'}: choose from {', '.join(ENGINE_NAMES)}")
        if not self.rates or not self.pitches:
            raise ValueError("give at least one rate and one pitch")
        for r in self.rates:
            for p in self.pitches:
                check_controls(r, p)
        if self.takes < 1:
            raise ValueError(f"takes must be >= 1, got {self.takes}")
        if self.duration_s <= 0 or self.sample_rate <= 0:
            raise ValueError(f"duration and sample rate must be positive, "
                             f"got {self.duration_s}, {self.sample_rate}")
        if self.trim_db >= 0:
            raise ValueError(f"trim dB must be negative, got {self.trim_db}")


def check_words(words: Sequence[str]) -> list[str]:
    out = []
    for w in words:
        w = w.strip()
        if not w:
            continue
        if not _WORD.match(w) or w.startswith("_"):
            raise ValueError(f"word {w!r}: use letters (a folder name and something to say)")
        out.append(w)
    if not out:
        raise ValueError("no words given")
    return out


@dataclass(frozen=True)
class Utterance:
    word: str
    engine: str
    voice: str
    speaker: str
    rate: float
    pitch: float
    n: int  # index of (rate, pitch, take) in the engine's grid
    seed: int  # the engine's random draws (Piper)

    @property
    def relpath(self) -> str:
        return f"{self.word}/{self.speaker}_nohash_{self.n}.wav"

    def describe(self) -> str:
        return f"{self.engine} voice {self.voice} rate {self.rate:g} pitch {self.pitch:g}"


def open_engines(cfg: SynthConfig) -> tuple[list[Engine], dict[str, str]]:
    """The chosen engines that work here, and what is missing for the others (name -> message).
    Naming an engine that is missing is an error; by default the missing ones are left out."""
    names = cfg.engines or ENGINE_NAMES
    found, missing = [], {}
    for name in names:
        e = engine(name)
        why = e.missing()
        if why is None:
            try:
                e.voices()  # a program without a usable voice is missing too
            except DataError as err:
                why = str(err)
        if why:
            missing[name] = why
        else:
            found.append(e)
    if cfg.engines is not None and missing:
        raise DataError("speech engines missing: " + "; ".join(f"{n}: {w}" for n, w in missing.items()))
    if not found:
        raise DataError("no speech engine found: " + "; ".join(f"{n}: {w}" for n, w in missing.items()))
    return found, missing


def engine_voices(e: Engine, cfg: SynthConfig) -> list[str]:
    voices = list(e.voices())
    if e.name == "espeak" and not cfg.use_variants:
        voices = [v for v in voices if "+" not in v]
    if cfg.voices is not None:
        voices = [v for v in voices if v in cfg.voices or v.split("+")[0] in cfg.voices]
    return voices


def _allocate(total: int, caps: list[int]) -> list[int]:
    """Split `total` as evenly as the caps allow; what a capped engine cannot take goes to the others."""
    share, left = [0] * len(caps), total
    while left > 0:
        room = [i for i, c in enumerate(caps) if share[i] < c]
        if not room:
            break
        each = max(1, left // len(room))
        for i in room:
            add = min(each, caps[i] - share[i], left)
            share[i] += add
            left -= add
            if left == 0:
                break
    return share


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode("utf-8"))


def plan(words: Sequence[str], cfg: SynthConfig, engines: Sequence[Engine]) -> list[Utterance]:
    """Every (engine, voice, rate, pitch, take) per word, or a seeded random `per_word` of them."""
    words = check_words(words)
    voices = {e.name: engine_voices(e, cfg) for e in engines}
    if cfg.voices is not None:
        known = {v for vs in voices.values() for v in vs} | {v.split("+")[0] for vs in voices.values() for v in vs}
        unknown = sorted(set(cfg.voices) - known)
        if unknown:
            raise DataError(f"unknown or unusable voices: {', '.join(unknown)} "
                            f"(see kws synth --list-voices)")
    grids = {e.name: [(r, p, t) for r in cfg.rates for p in cfg.pitches
                      for t in range(cfg.takes if e.stochastic else 1)] for e in engines}
    out = []
    for word in words:
        combos = [[(e, v, n) for v in voices[e.name] for n in range(len(grids[e.name]))] for e in engines]
        if cfg.per_word is not None:
            shares = _allocate(cfg.per_word, [len(c) for c in combos])
            for k, (c, share) in enumerate(zip(combos, shares, strict=True)):
                if share < len(c):
                    rng = np.random.default_rng([cfg.seed, zlib.crc32(word.encode("utf-8")), _seed(engines[k].name)])
                    combos[k] = [c[i] for i in np.sort(rng.choice(len(c), share, replace=False))]
        for c in combos:
            for e, v, n in c:
                r, p, _ = grids[e.name][n]
                out.append(Utterance(word, e.name, v, e.speaker(v), r, p, n, _seed(cfg.seed, word, e.name, v, n)))
    return out


def trim_silence(x: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                 frame_ms: float = 10.0) -> np.ndarray:
    """Cut leading/trailing frames quieter than `threshold_db` below the loudest frame."""
    n = max(1, int(sample_rate * frame_ms / 1000))
    frames = len(x) // n
    if frames == 0:
        return x[:0]
    rms = np.sqrt(np.mean(np.square(x[: frames * n].reshape(frames, n), dtype=np.float64), axis=1))
    peak = rms.max()
    if peak <= 1e-5:
        return x[:0]
    loud = np.flatnonzero(rms >= peak * 10.0 ** (threshold_db / 20.0))
    return x[loud[0] * n: (loud[-1] + 1) * n]


def centre(x: np.ndarray, length: int) -> np.ndarray:
    y = np.zeros(length, np.float32)
    start = (length - len(x)) // 2
    y[start: start + len(x)] = x
    return y


def render(utt: Utterance, cfg: SynthConfig, eng: Engine) -> np.ndarray:
    """One utterance as a 1 s (duration_s) float32 clip at cfg.sample_rate: the one path for every engine."""
    from core.audio.resample import resample

    speech = eng.synthesize(utt.word, utt.voice, rate=utt.rate, pitch=utt.pitch, seed=utt.seed)
    x = resample(speech.samples, speech.sample_rate, cfg.sample_rate)
    x = trim_silence(x, cfg.sample_rate, cfg.trim_db)
    if len(x) == 0:
        raise DataError(f"{utt.engine} produced silence")
    length = int(round(cfg.duration_s * cfg.sample_rate))
    if len(x) > length:
        raise DataError(f"too long: {len(x) / cfg.sample_rate:.2f} s after trimming (> {cfg.duration_s} s)")
    peak = float(np.abs(x).max())
    if peak > 0.98:
        x = x * (0.98 / peak)
    return centre(x, length)


@dataclass(frozen=True)
class EngineTiming:
    utterances: int
    seconds: float  # wall time inside the engine (process start and voice loading included)

    @property
    def ms_per_utterance(self) -> float:
        return 1000.0 * self.seconds / max(1, self.utterances)


@dataclass(frozen=True)
class SynthResult:
    written: tuple[Path, ...]
    skipped: tuple[tuple[str, str], ...]  # (relpath, reason)
    timing: dict = field(default_factory=dict)  # engine -> EngineTiming


def synthesize(words: Sequence[str], outdir: str | os.PathLike, cfg: SynthConfig | None = None, *,
               jobs: int = 1, engines: Sequence[Engine] | None = None,
               progress: Callable[[int, int], None] | None = None, stage: Callable[[str], None] | None = None,
               cancel=None) -> SynthResult:
    """Render and write every planned utterance; failures are reported, not fatal. `engines`: already
    opened ones (open_engines); otherwise they are found here. `stage` hears what is happening."""
    from core.audio.wav import write_wav

    cfg = cfg or SynthConfig()
    out = Path(outdir)
    own = engines is None
    if stage:
        stage("finding speech engines and voices")
    if own:
        engines, _ = open_engines(cfg)
    try:
        todo = plan(words, cfg, engines)
        by_name = {e.name: e for e in engines}
        written: list[Path] = []
        skipped: list[tuple[str, str]] = []
        spent = {e.name: [0, 0.0] for e in engines}
        lock, stop = threading.Lock(), threading.Event()

        def one(utt: Utterance):
            if stop.is_set() or (cancel is not None and cancel.is_set()):
                return None
            t0 = time.perf_counter()
            try:
                clip = render(utt, cfg, by_name[utt.engine])
                target = out / utt.relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                write_wav(target, clip, cfg.sample_rate)
                return target, None
            except Exception as e:  # one bad utterance never ends the run
                return None, f"{utt.relpath} ({utt.describe()}): {e}"
            finally:
                with lock:
                    spent[utt.engine][0] += 1
                    spent[utt.engine][1] += time.perf_counter() - t0

        if stage:
            stage(f"synthesizing with {', '.join(e.name for e in engines)}")
        if progress:
            progress(0, len(todo))
        # each thread speaks a fixed share in order: an engine process carries state from one
        # utterance to the next (a festival diphone take differs after some other takes), so which
        # process speaks a take, and after what, must not depend on timing (reproducible builds)
        jobs = max(1, min(jobs, len(todo)))
        done: queue.Queue = queue.Queue()

        def speak(share: range) -> None:
            for i in share:
                done.put((i, one(todo[i])))

        results: list = [None] * len(todo)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for j in range(jobs):
                pool.submit(speak, range(j, len(todo), jobs))
            try:
                for n in range(1, len(todo) + 1):
                    i, results[i] = done.get()
                    check_cancel(cancel)
                    if progress:
                        progress(n, len(todo))
            except (Cancelled, KeyboardInterrupt):
                stop.set()
                raise
        for res in results:
            if res is not None:
                path, err = res
                if err:
                    skipped.append((err.split(" ", 1)[0], err))
                else:
                    written.append(path)
        timing = {n: EngineTiming(c, s) for n, (c, s) in spent.items() if c}
        return SynthResult(tuple(written), tuple(skipped), timing)
    finally:
        if own:
            for e in engines:
                e.close()
