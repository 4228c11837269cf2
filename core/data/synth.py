"""Spoken keywords from espeak-ng, in Speech Commands layout.

Every working English espeak-ng voice (mbrola voices need files that are not installed and are
skipped) x every voice variant (`+klatt3`, `+whisper`, ...; plus none) x speeds x pitches. Each
utterance is resampled to 16 kHz mono, trimmed of leading and trailing silence (frames below
`trim_db` re the loudest 10 ms frame) and centred in a 1 s clip of silence:

    DIR/<word>/espeak-<voice>-<variant>_nohash_<n>.wav

The speaker id (before `_nohash_`) is voice + variant, so the speaker split of `kws lists` keeps
each synthetic voice within one split; n numbers the speed x pitch combination. To train on
synthetic and real speech together, give `kws lists` both folders:
    kws synth --words yes,no -o synth/ && kws lists real/ synth/ -o lists/
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.progress import Cancelled, check_cancel

ESPEAK = "espeak-ng"
_WORD = re.compile(r"^[A-Za-z][A-Za-z' -]*$")


@dataclass(frozen=True)
class Voice:
    code: str  # language code, e.g. en-us
    file: str  # voice file, e.g. gmw/en-US (what -v takes, unambiguous)
    name: str


def _espeak() -> str:
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise DataError(f"{ESPEAK} not found: install it (apt-get install espeak-ng)")
    return exe


def _voice_table(arg: str) -> list[list[str]]:
    out = subprocess.run([_espeak(), f"--voices={arg}"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise DataError(f"{ESPEAK} --voices={arg} failed: {out.stderr.strip()}")
    return [ln.split() for ln in out.stdout.splitlines()[1:] if len(ln.split()) >= 5]


@lru_cache(maxsize=1)
def english_voices() -> tuple[Voice, ...]:
    """English voices that synthesize here (mbrola ones are skipped)."""
    seen, voices = set(), []
    for row in _voice_table("en"):
        code, name, file = row[1], row[3], row[4]
        if file.startswith(("mb/", "!v/")) or file in seen:
            continue
        seen.add(file)
        if _works(file):
            voices.append(Voice(code, file, name))
    if not voices:
        raise DataError(f"{ESPEAK}: no working English voice")
    return tuple(voices)


@lru_cache(maxsize=1)
def variants() -> tuple[str, ...]:
    return tuple(sorted({row[4][3:] for row in _voice_table("variant") if row[4].startswith("!v/")}))


def _works(voice_file: str) -> bool:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "t.wav"
        r = subprocess.run([_espeak(), "-v", voice_file, "-w", str(out), "test"], capture_output=True,
                           timeout=30)
        return r.returncode == 0 and out.is_file() and out.stat().st_size > 1000


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")


@dataclass(frozen=True)
class Utterance:
    word: str
    voice: Voice
    variant: str | None
    speed_wpm: int
    pitch: int
    n: int  # index of (speed, pitch) in the grid

    @property
    def speaker(self) -> str:
        return f"espeak-{_slug(self.voice.code)}-{_slug(self.variant or 'plain')}"

    @property
    def relpath(self) -> str:
        return f"{self.word}/{self.speaker}_nohash_{self.n}.wav"

    def command(self, out: Path) -> list[str]:
        v = self.voice.file + (f"+{self.variant}" if self.variant else "")
        return [_espeak(), "-v", v, "-s", str(self.speed_wpm), "-p", str(self.pitch), "-w", str(out),
                "--", self.word]


@dataclass(frozen=True)
class SynthConfig:
    per_word: int | None = None  # None: every combination
    speeds_wpm: tuple[int, ...] = (140, 175, 210)
    pitches: tuple[int, ...] = (35, 50, 65)
    use_variants: bool = True
    voices: tuple[str, ...] | None = None  # language codes to keep (None: all working English voices)
    seed: int = 0
    sample_rate: int = 16000
    duration_s: float = 1.0
    trim_db: float = -40.0

    def __post_init__(self):
        if self.per_word is not None and self.per_word < 1:
            raise ValueError(f"per word must be >= 1, got {self.per_word}")
        if not self.speeds_wpm or any(not 80 <= s <= 450 for s in self.speeds_wpm):
            raise ValueError(f"speeds must be words per minute in [80, 450], got {self.speeds_wpm}")
        if not self.pitches or any(not 0 <= p <= 99 for p in self.pitches):
            raise ValueError(f"pitches must be in [0, 99], got {self.pitches}")
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


def plan(words: Sequence[str], cfg: SynthConfig) -> list[Utterance]:
    """Every (voice, variant, speed, pitch) per word, or a seeded random `per_word` of them."""
    voices = [v for v in english_voices() if cfg.voices is None or v.code in cfg.voices]
    if cfg.voices is not None:
        unknown = sorted(set(cfg.voices) - {v.code for v in voices})
        if unknown:
            codes = ", ".join(v.code for v in english_voices())
            raise DataError(f"unknown or unusable voices: {', '.join(unknown)} (working: {codes})")
    var: list[str | None] = [None] + (list(variants()) if cfg.use_variants else [])
    grid = [(s, p) for s in cfg.speeds_wpm for p in cfg.pitches]
    out = []
    for word in check_words(words):
        combos = [(v, va, n) for v in voices for va in var for n in range(len(grid))]
        if cfg.per_word is not None and cfg.per_word < len(combos):
            rng = np.random.default_rng([cfg.seed, zlib.crc32(word.encode("utf-8"))])
            combos = [combos[i] for i in np.sort(rng.choice(len(combos), cfg.per_word, replace=False))]
        out += [Utterance(word, v, va, grid[n][0], grid[n][1], n) for v, va, n in combos]
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


def render(utt: Utterance, cfg: SynthConfig, workdir: Path) -> np.ndarray:
    """One utterance as a 1 s (duration_s) float32 clip at cfg.sample_rate."""
    from core.audio.wav import read_wav

    tmp = workdir / f"{threading.get_ident()}.wav"
    r = subprocess.run(utt.command(tmp), capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not tmp.is_file():
        raise DataError(f"{ESPEAK} failed: {r.stderr.strip() or f'exit {r.returncode}'}")
    x, _ = read_wav(tmp, cfg.sample_rate)
    x = trim_silence(x, cfg.sample_rate, cfg.trim_db)
    if len(x) == 0:
        raise DataError("espeak-ng produced silence")
    length = int(round(cfg.duration_s * cfg.sample_rate))
    if len(x) > length:
        raise DataError(f"too long: {len(x) / cfg.sample_rate:.2f} s after trimming (> {cfg.duration_s} s)")
    peak = float(np.abs(x).max())
    if peak > 0.98:
        x = x * (0.98 / peak)
    return centre(x, length)


@dataclass(frozen=True)
class SynthResult:
    written: tuple[Path, ...]
    skipped: tuple[tuple[str, str], ...]  # (relpath, reason)


def synthesize(words: Sequence[str], outdir: str | os.PathLike, cfg: SynthConfig | None = None, *,
               jobs: int = 1, progress: Callable[[int, int], None] | None = None, cancel=None) -> SynthResult:
    """Render and write every planned utterance; failures are reported, not fatal."""
    from core.audio.wav import write_wav

    cfg = cfg or SynthConfig()
    out = Path(outdir)
    todo = plan(words, cfg)
    written: list[Path] = []
    skipped: list[tuple[str, str]] = []
    stop = threading.Event()

    def one(utt: Utterance):
        if stop.is_set() or (cancel is not None and cancel.is_set()):
            return None
        try:
            clip = render(utt, cfg, work)
            target = out / utt.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            write_wav(target, clip, cfg.sample_rate)
            return target, None
        except Exception as e:  # one bad utterance never ends the run
            how = f"{utt.voice.file}+{utt.variant or ''} -s {utt.speed_wpm} -p {utt.pitch}"
            return None, f"{utt.relpath} ({how}): {e}"

    if progress:
        progress(0, len(todo))
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as d:
        work = Path(d)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            try:
                for i, res in enumerate(pool.map(one, todo), 1):
                    check_cancel(cancel)
                    if res is not None:
                        path, err = res
                        if err:
                            skipped.append((err.split(" ", 1)[0], err))
                        else:
                            written.append(path)
                    if progress:
                        progress(i, len(todo))
            except (Cancelled, KeyboardInterrupt):
                stop.set()
                raise
    return SynthResult(tuple(written), tuple(skipped))
