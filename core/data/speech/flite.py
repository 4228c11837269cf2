"""flite (CMU Flite 2.2, one `flite` process per utterance).

Voices: what `flite -lv` lists, less the talking clock (`awb_time`): kal (diphone, 8 kHz), kal16
(diphone, 16 kHz), awb, rms, slt (clustergen, 16 kHz). Controls: `--setf duration_stretch` = the
voice's own stretch / rate (kal and kal16 define 1.1, the others 1: a word at 1.0 is 0.91x as long
as kal's own); pitch `--setf f0_shift=pitch`, which multiplies the f0 targets of kal, kal16, awb and slt. The rms
voice ignores every f0 feature (f0_shift, int_f0_target_mean: its output does not change), so its
pitch comes from resampling.
"""

from __future__ import annotations

import subprocess

from core.data.speech import Engine, Speech
from core.data.speech.process import TempFiles, run_once, which
from core.errors import DataError

PROGRAM = "flite"
NO_PITCH_CONTROL = frozenset({"rms"})
NOT_A_VOICE = frozenset({"awb_time"})  # says the time of day only
OWN_STRETCH = {"kal": 1.1, "kal16": 1.1}


class Flite(Engine):
    name = "flite"
    install = "apt-get install -y flite"
    description = "CMU flite diphone and clustergen voices"

    def __init__(self):
        super().__init__()
        self._tmp = TempFiles("kws-flite-")

    def _missing(self) -> str | None:
        return None if which(PROGRAM) else f"{PROGRAM} not found"

    def _voices(self) -> list[str]:
        r = subprocess.run([which(PROGRAM), "-lv"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or "Voices available:" not in r.stdout:
            raise DataError(f"{PROGRAM} -lv failed: {r.stderr.strip() or r.stdout.strip()}")
        names = r.stdout.split("Voices available:", 1)[1].split()
        return [v for v in names if v not in NOT_A_VOICE]

    def pitch_control(self, voice: str) -> str:
        return "resampling" if voice in NO_PITCH_CONTROL else "engine"

    def _synthesize(self, text: str, voice: str, rate: float, pitch: float, seed: int) -> Speech:
        out = self._tmp.path()
        cmd = [which(PROGRAM), "-voice", voice, "--setf", f"duration_stretch={OWN_STRETCH.get(voice, 1.0) / rate:.4f}",
               "--setf", f"f0_shift={pitch:.4f}", "-t", text, "-o", str(out)]
        return run_once(cmd, out, f"{PROGRAM} -voice {voice}")

    def close(self) -> None:
        self._tmp.cleanup()
