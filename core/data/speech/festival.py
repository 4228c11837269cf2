"""Festival 2.5 (one long-lived `festival --pipe` per calling thread: starting festival and loading a
voice take ~0.3-0.6 s, a word ~10 ms with a diphone voice and ~80 ms with HTS).

Voices: what `(voice.list)` names; Debian's main section has kal_diphone, ked_diphone
(festvox-kallpc16k, festvox-kdlpc16k, 16 kHz) and cmu_us_slt_arctic_hts (festvox-us-slt-hts, 32
kHz). Controls: diphone voices take `Duration_Stretch` = 1/rate and pitch by scaling the voice's
own `int_lr_params` target_f0_mean and target_f0_std (so the contour keeps its shape). HTS voices
ignore both (their durations and f0 come from the HTS model): rate is hts_engine's `-r` speed
factor, and pitch comes from resampling (festival's hts_engine 1.07 module has no `-fm` option).

Each request re-selects the voice (which resets every voice parameter) before setting the
controls, so no setting leaks from one word to the next. Errors from festival's interpreter end
only the current request; a sentinel written to stderr marks the end of each one.
"""

from __future__ import annotations

import re

from core.data.speech import Engine, Speech
from core.data.speech.process import TempFiles, Worker, WorkerPool, read_speech, which
from core.errors import DataError

PROGRAM = "festival"
DONE = "KWS-SYNTH-DONE"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SCALE_F0 = ("(set! int_lr_params (mapcar (lambda (p) (if (member (car p) '(target_f0_mean target_f0_std)) "
             "(list (car p) (* {pitch:.5f} (cadr p))) p)) int_lr_params))")


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Festival(Engine):
    name = "festival"
    install = "apt-get install -y festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
    description = "Festival diphone and HTS voices"

    def __init__(self):
        super().__init__()
        self._tmp = TempFiles("kws-festival-")
        self._pool = WorkerPool(lambda: Worker([which(PROGRAM), "--pipe"], PROGRAM, reply="stderr"))

    def _missing(self) -> str | None:
        return None if which(PROGRAM) else f"{PROGRAM} not found"

    def _voices(self) -> list[str]:
        try:
            lines = self._ask('(format stderr "%l\\n" (voice.list))')
        finally:
            self._pool.close_all()
        names = [v for v in (lines[-1].strip("()").split() if lines else []) if _NAME.match(v)]
        if not names:
            raise DataError(f"no festival voice installed (install: {self.install})")
        return names

    def pitch_control(self, voice: str) -> str:
        return "resampling" if voice.endswith("_hts") else "engine"

    def _ask(self, scheme: str) -> list[str]:
        """Run scheme in this thread's festival; the lines it wrote to stderr."""
        w = self._pool.get()
        w.send(f'{scheme}\n(format stderr "{DONE}\\n")\n'.encode())
        lines = []
        while (line := w.readline()).strip() != DONE:
            lines.append(line)
        return lines

    def _synthesize(self, text: str, voice: str, rate: float, pitch: float, seed: int) -> Speech:
        out = self._tmp.path()
        out.unlink(missing_ok=True)
        if voice.endswith("_hts"):
            controls = ["(Parameter.set 'Duration_Stretch 1.0)",
                        f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.5f}))))']
        else:
            controls = [f"(Parameter.set 'Duration_Stretch {1.0 / rate:.5f})", _SCALE_F0.format(pitch=pitch)]
        scheme = " ".join([f"(voice_{voice})", *controls,
                           f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
                           f"{_scheme_string(str(out))} 'riff)"])
        try:
            lines = self._ask(scheme)
        except DataError:
            self._pool.drop()
            raise
        what = f"{PROGRAM} voice {voice}"
        errors = [ln for ln in lines if "ERROR" in ln or "failed" in ln or "can't" in ln]
        if errors:
            raise DataError(f"{what}: {' '.join(e.strip() for e in errors)[:300]}")
        return read_speech(out, what)

    def close(self) -> None:
        self._pool.close_all()
        self._tmp.cleanup()
