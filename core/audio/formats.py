"""The audio file formats kwsgui reads and writes, in one place.

Reading never trusts the extension (libsndfile detects the format from the content, so a FLAC or
MP3 named `.wav` reads); the extensions below only decide which files a folder scan picks up and
which ones a file dialog shows, and the format `write_wav` writes.
"""

from __future__ import annotations

import os
from pathlib import Path

# extension -> (libsndfile container, default subtype for writing 16-bit material)
_WRITE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
AUDIO_EXTENSIONS: tuple[str, ...] = tuple(_WRITE_FORMATS)
FORMAT_NAMES = "WAV, FLAC, OGG/Vorbis, Opus, MP3"
# A Qt name filter string (plain text, core stays Qt-free): audio first, then everything.
DIALOG_FILTER = "Audio files (" + " ".join(f"*{e}" for e in AUDIO_EXTENSIONS) + ");;All files (*)"


def is_audio_name(path: str | os.PathLike) -> bool:
    """True if the file name ends in one of AUDIO_EXTENSIONS (any case)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def write_format(path: str | os.PathLike) -> tuple[str, str]:
    """(container, subtype) libsndfile writes for this file name; ValueError for an unknown extension."""
    ext = Path(path).suffix.lower()
    if ext not in _WRITE_FORMATS:
        raise ValueError(f"{path}: cannot tell the audio format from '{ext or 'no extension'}'; "
                         f"use one of {', '.join(AUDIO_EXTENSIONS)}")
    return _WRITE_FORMATS[ext]
