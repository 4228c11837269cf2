"""espeak-ng (formant synthesis, GPL: one `espeak-ng` process per utterance).

Voices: every working English voice (mbrola voices need files Debian's main section lacks and are
skipped) by its language code, plain (`en-us`) and with each voice variant (`en-us+klatt3`,
`en-us+whisper`, ...): 8 x 102 here. Controls: `-s` words per minute = 175 x rate (espeak's default
175); `-p` = 50 + 50 log2(pitch), because espeak-ng scales its base pitch by
`pitch_adjust_tab[p] / 128`, a table "set from y = pow(2,x) * 128, x=-1 to 1" (one octave per 50
steps, 128 at p = 50); the intonation range is left as it is. Output: 22.05 kHz.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.data.speech import Engine, Speech
from core.data.speech.process import TempFiles, run_once, which
from core.errors import DataError

PROGRAM = "espeak-ng"
DEFAULT_WPM = 175


@dataclass(frozen=True)
class Voice:
    code: str  # language code, e.g. en-us
    file: str  # voice file, e.g. gmw/en-US (what -v takes, unambiguous)
    name: str


def espeak_args(rate: float, pitch: float) -> list[str]:
    wpm = min(450, max(80, int(round(DEFAULT_WPM * rate))))
    p = min(99, max(0, int(round(50 + 50 * math.log2(pitch)))))
    return ["-s", str(wpm), "-p", str(p)]


def phonemes(words: list[str], voice: str = "en-us") -> list[str] | None:
    """espeak-ng's phonemes (`-x`) of each word, in order; None when espeak-ng is missing or fails."""
    exe = which(PROGRAM)
    if exe is None:
        return None
    try:
        run = subprocess.run([exe, "-q", "-x", "-v", voice], input="".join(f"{w}.\n" for w in words),
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    said = run.stdout.split("\n")
    if run.returncode != 0 or len(said) < len(words):
        return None
    return [ph.strip() for ph in said[: len(words)]]


class Espeak(Engine):
    name = "espeak"
    install = "apt-get install -y espeak-ng"
    description = "espeak-ng formant voices and their variants"

    def __init__(self):
        super().__init__()
        self._files: dict[str, str] = {}
        self._tmp = TempFiles("kws-espeak-")
        self.base_voices: tuple[Voice, ...] = ()
        self.variants: tuple[str, ...] = ()

    def _missing(self) -> str | None:
        return None if which(PROGRAM) else f"{PROGRAM} not found"

    def _table(self, arg: str) -> list[list[str]]:
        out = subprocess.run([which(PROGRAM), f"--voices={arg}"], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise DataError(f"{PROGRAM} --voices={arg} failed: {out.stderr.strip()}")
        return [ln.split() for ln in out.stdout.splitlines()[1:] if len(ln.split()) >= 5]

    def _works(self, voice_file: str) -> bool:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "t.wav"
            r = subprocess.run([which(PROGRAM), "-v", voice_file, "-w", str(out), "test"], capture_output=True,
                               timeout=30)
            return r.returncode == 0 and out.is_file() and out.stat().st_size > 1000

    def _voices(self) -> list[str]:
        seen, voices = set(), []
        for row in self._table("en"):
            code, name, file = row[1], row[3], row[4]
            if file.startswith(("mb/", "!v/")) or file in seen or code in self._files:
                continue
            seen.add(file)
            if self._works(file):
                voices.append(Voice(code, file, name))
                self._files[code] = file
        if not voices:
            raise DataError(f"{PROGRAM}: no working English voice")
        self.base_voices = tuple(voices)
        self.variants = tuple(sorted({r[4][3:] for r in self._table("variant") if r[4].startswith("!v/")}))
        return [v.code + (f"+{va}" if va else "") for v in voices for va in (None, *self.variants)]

    def _synthesize(self, text: str, voice: str, rate: float, pitch: float, seed: int) -> Speech:
        code, _, variant = voice.partition("+")
        v = self._files[code] + (f"+{variant}" if variant else "")
        out = self._tmp.path()
        cmd = [which(PROGRAM), "-v", v, *espeak_args(rate, pitch), "-w", str(out), "--", text]
        return run_once(cmd, out, f"{PROGRAM} -v {v}")

    def close(self) -> None:
        self._tmp.cleanup()
