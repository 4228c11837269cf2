"""Audio files through the public reader (core.audio.wav.read_wav), resampling to 16 kHz."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from core.audio import wav

from .formats import Format, register


def audio_seeds() -> list[bytes]:
    """Short clips in the containers and sample formats the reader takes, written by our writer."""
    t = np.arange(800) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = []
    with tempfile.TemporaryDirectory() as d:
        for name, x, rate, bits in (("a.wav", tone, 8000, 16), ("b.wav", np.stack([tone, -tone], 1), 8000, 32),
                                    ("c.wav", tone[:100], 44100, 16), ("d.flac", tone, 8000, 16)):
            p = Path(d) / name
            wav.write_wav(p, x, rate, bits)
            out.append(p.read_bytes())
    return out


def load_audio(path: str) -> None:
    wav.read_wav(path, 16000)


register(Format("wav", ".wav", audio_seeds, load_audio))
