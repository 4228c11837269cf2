"""Wav reading and writing without surprises.

Reads PCM 8/16/24/32-bit, IEEE float 32/64 and WAVE_FORMAT_EXTENSIBLE files, mono or
multi-channel (averaged to mono), and returns float32 samples in [-1, 1). Every problem is an
`AudioError` that names the file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AudioError
from core.fsutil import atomic_path

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# The first two bytes of the sub-format GUID of an extensible file hold the real format tag.
_STREAMED_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits_per_sample: int
    is_float: bool
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _parse(path: Path, data: bytes) -> tuple[WavInfo, bytes]:
    name = str(path)
    if len(data) < 12:
        raise AudioError(f"{name}: not a wav file (only {len(data)} bytes)")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a wav file (no RIFF/WAVE header)")
    # A streaming writer leaves the RIFF size unset too; only then does a 0 data size mean "to the end".
    streamed = struct.unpack_from("<I", data, 4)[0] in _STREAMED_SIZES
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise AudioError(f"{name}: truncated 'fmt ' chunk")
            fmt = struct.unpack_from("<HHIIHH", data, body)
            tag = fmt[0]
            if tag == _EXTENSIBLE:
                if size < 40 or body + 26 > len(data):
                    raise AudioError(f"{name}: truncated WAVE_FORMAT_EXTENSIBLE header")
                tag = struct.unpack_from("<H", data, body + 24)[0]
                fmt = (tag,) + fmt[1:]
        elif cid == b"data":
            available = len(data) - body
            if (size == 0xFFFFFFFF or (size == 0 and streamed)) and available > 0:
                size = available
            if size > available:
                raise AudioError(f"{name}: truncated: data chunk says {size} bytes, file holds {available}")
            pcm = data[body : body + size]
            break
        pos = body + size + (size & 1)
    if fmt is None:
        raise AudioError(f"{name}: no 'fmt ' chunk")
    if pcm is None:
        raise AudioError(f"{name}: no 'data' chunk")
    tag, channels, rate, _, block, bits = fmt
    if channels < 1 or rate < 1:
        raise AudioError(f"{name}: invalid header ({channels} channels, {rate} Hz)")
    if tag == _PCM and bits not in (8, 16, 24, 32):
        raise AudioError(f"{name}: unsupported PCM sample width {bits} bits")
    if tag == _FLOAT and bits not in (32, 64):
        raise AudioError(f"{name}: unsupported float sample width {bits} bits")
    if tag not in (_PCM, _FLOAT):
        raise AudioError(f"{name}: unsupported wav encoding (format tag 0x{tag:04x}); use PCM or float")
    frame_bytes = channels * bits // 8
    frames = len(pcm) // frame_bytes
    if frames == 0:
        raise AudioError(f"{name}: has no audio samples")
    info = WavInfo(rate, channels, bits, tag == _FLOAT, frames)
    return info, pcm[: frames * frame_bytes]


def _decode(info: WavInfo, pcm: bytes) -> np.ndarray:
    """Raw bytes -> float32 array of shape (frames, channels), scaled to [-1, 1)."""
    bits = info.bits_per_sample
    if info.is_float:
        x = np.frombuffer(pcm, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 8:
        x = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    elif bits == 24:
        b = np.frombuffer(pcm, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    else:
        x = (np.frombuffer(pcm, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    return x.reshape(info.frames, info.channels)


def read_wav_info(path: str | os.PathLike) -> WavInfo:
    p = Path(path)
    return _parse(p, _read_bytes(p))[0]


def _read_bytes(path: Path) -> bytes:
    if path.exists() and not path.is_file() and not path.is_dir():  # a fifo or device would block
        raise AudioError(f"{path}: not a regular file")
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise AudioError(f"{path}: is a folder, not a wav file") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot read: {e.strerror or e}") from None


def read_wav(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a wav as mono float32 in [-1, 1); resample to `sample_rate` when given.

    Returns (samples, rate). Multi-channel audio is averaged to mono.
    """
    p = Path(path)
    info, pcm = _parse(p, _read_bytes(p))
    x = _decode(info, pcm)
    mono = x[:, 0] if info.channels == 1 else x.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{p}: contains NaN or infinite samples")
    rate = info.sample_rate
    if sample_rate is not None and sample_rate != rate:
        from core.audio.resample import resample

        mono, rate = resample(mono, rate, sample_rate), sample_rate
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float [-1, 1) -> int16 with clipping (the inverse of the /32768 scaling)."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, bits: int = 16) -> None:
    """Write mono or (frames, channels) audio atomically. bits: 16 (PCM) or 32 (float)."""
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    channels = x.shape[1]
    if bits == 16:
        payload, tag = to_int16(x).tobytes(), _PCM
    elif bits == 32:
        payload, tag = x.astype("<f4").tobytes(), _FLOAT
    else:
        raise ValueError(f"bits must be 16 or 32, not {bits}")
    block = channels * bits // 8
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, sample_rate, sample_rate * block, block, bits)
    header += b"data" + struct.pack("<I", len(payload))
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(header + payload + (b"\0" if len(payload) & 1 else b""))
    except OSError as e:
        raise AudioError(f"{path}: cannot write: {e.strerror or e}") from None
