"""Audio file reading and writing through libsndfile (`soundfile`), without surprises.

Reads what libsndfile recognises from the file's content, never from its name: WAV (PCM 8/16/24/32,
IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE, A-law/mu-law, ADPCM), FLAC, OGG/Vorbis, Opus, MP3 (and
AIFF, W64, RF64, ...). Returns float32 mono (channels averaged) in [-1, 1]. Every problem is an
`AudioError` naming the file.

Checked before any sample is decoded:
- regular files only (a FIFO or /dev/zero is refused before anything blocks),
- a RIFF/WAVE header's data chunk fits in the file (a truncated file is refused, not padded) and
  its block size matches its channels and sample width,
- sample rate MIN_SAMPLE_RATE..MAX_SAMPLE_RATE Hz, 1..MAX_CHANNELS channels, at least one frame,
- a whole-file read (`read_wav`) holds at most MAX_READ_FRAMES frames, before and after resampling;
  `AudioReader.blocks` streams a file of any length in blocks of BLOCK_FRAMES.
Sample values: NaN or infinity is refused. Float formats (and lossy decoders) can go past full
scale: overs up to OVER_LIMIT (+12 dBFS; decoded MP3/Vorbis/Opus of clipped material overshoot by a
few dB) are clipped to [-1, 1]; anything larger is not audio scaled to [-1, 1] (e.g. float samples
written in integer units, or 3e38) and is refused.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio.formats import write_format
from core.errors import AudioError
from core.fsutil import atomic_path, check_regular_file

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384_000
MAX_CHANNELS = 64
MAX_READ_FRAMES = 1 << 27  # 512 MiB as float32 mono: 2.3 h at 16 kHz, 47 min at 48 kHz
BLOCK_FRAMES = 1 << 16
OVER_LIMIT = 4.0  # +12 dBFS

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_STREAMED_SIZES = (0, 0xFFFFFFFF)
_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
         "ULAW": 8, "ALAW": 8}


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits_per_sample: int  # 0 for compressed formats without a fixed sample width (Vorbis, Opus, MP3)
    is_float: bool
    frames: int  # libsndfile's count; an estimate for some MP3s
    format: str = "WAV"  # libsndfile's container name: WAV, FLAC, OGG, MP3, ...
    subtype: str = "PCM_16"  # PCM_16, FLOAT, VORBIS, OPUS, MPEG_LAYER_III, ...

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class _RawData:
    """A streamed RIFF/WAVE file whose sizes were never filled in: where its samples lie, how to read them."""

    offset: int
    length: int
    subtype: str
    sample_rate: int
    channels: int


_RAW_SUBTYPES = {(_PCM, 8): "PCM_U8", (_PCM, 16): "PCM_16", (_PCM, 24): "PCM_24", (_PCM, 32): "PCM_32",
                 (_FLOAT, 32): "FLOAT", (_FLOAT, 64): "DOUBLE"}


def _riff_scan(fd: int, size: int) -> str | _RawData | None:
    """Walk a RIFF/WAVE header's chunks for what libsndfile would quietly accept (a problem, as text) or
    misread (a streamed file's unset data size, which it takes for 0 frames). None: fine, or not RIFF."""
    head = os.pread(fd, 12, 0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    streamed = struct.unpack_from("<I", head, 4)[0] in _STREAMED_SIZES
    pos, fmt = 12, None
    while pos + 8 <= size:
        chunk = os.pread(fd, 8, pos)
        cid, n = chunk[:4], struct.unpack_from("<I", chunk, 4)[0]
        if cid == b"fmt ":
            body = os.pread(fd, min(n, 26), pos + 8)
            if len(body) >= 16:
                tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", body)
                if tag == _EXTENSIBLE and len(body) >= 26:
                    tag = struct.unpack_from("<H", body, 24)[0]
                if channels and (problem := _limit_problem(rate, channels)):
                    return problem
                if tag in (_PCM, _FLOAT) and channels and block != channels * (-(-bits // 8)):
                    return f"inconsistent 'fmt ' chunk: block size {block} bytes for {channels} x {bits}-bit samples"
                fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            available = size - pos - 8
            if n == 0 and streamed and available > 0 and fmt is not None and (fmt[0], fmt[3]) in _RAW_SUBTYPES:
                return _RawData(pos + 8, available, _RAW_SUBTYPES[fmt[0], fmt[3]], fmt[2], fmt[1])
            if n != 0xFFFFFFFF and n > available:
                return f"truncated: data chunk says {n} bytes, file holds {available}"
            return None
        pos += 8 + n + (n & 1)
    return None


class _Window(io.RawIOBase):
    """Bytes [offset, offset + length) of an open file, as a seekable file for libsndfile's virtual IO."""

    def __init__(self, fd: int, offset: int, length: int):
        super().__init__()
        self.fd, self.offset, self.length, self.pos = fd, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = (0, self.pos, self.length)[whence]
        self.pos = min(max(0, base + pos), self.length)
        return self.pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self.length - self.pos)
        data = os.pread(self.fd, n, self.offset + self.pos) if n > 0 else b""
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)


class AudioReader:
    """An open audio file: header checked at construction, samples decoded block by block.

    `blocks(sample_rate)` yields float32 mono blocks (resampled when `sample_rate` differs); memory
    stays one block whatever the file's length. Use as a context manager or call `close()`.
    """

    def __init__(self, path: str | os.PathLike):
        import soundfile as sf

        self.path = p = check_regular_file(path, "audio file", error=AudioError)
        try:  # O_NONBLOCK: should the file have become a FIFO since the check, open still returns at once
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as e:
            raise AudioError(f"{p}: cannot read: {e.strerror or e}") from None
        self._fd, self._file = fd, None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise AudioError(f"{p}: audio file must be a regular file")
            scan = _riff_scan(fd, st.st_size)
            if isinstance(scan, str):
                raise AudioError(f"{p}: {scan}")
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                if isinstance(scan, _RawData):
                    self._file = f = sf.SoundFile(_Window(fd, scan.offset, scan.length), format="RAW",
                                                  subtype=scan.subtype, samplerate=scan.sample_rate,
                                                  channels=scan.channels, endian="LITTLE")
                else:
                    self._file = f = sf.SoundFile(fd, closefd=False)
            except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
                raise AudioError(f"{p}: not a readable audio file ({_reason(e)})") from None
            self.info = WavInfo(f.samplerate, f.channels, _BITS.get(f.subtype, 0), f.subtype in ("FLOAT", "DOUBLE"),
                                max(0, f.frames), f.format, f.subtype)
            _check_limits(p, self.info)
        except BaseException:
            self.close()
            raise

    def blocks(self, sample_rate: int | None = None, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Float32 mono blocks in [-1, 1] at `sample_rate` (default: the file's), from the start."""
        from core.audio.resample import StreamingResampler

        f, p = self._file, self.path
        if f is None:
            raise AudioError(f"{p}: closed")
        rate = self.info.sample_rate
        rs = StreamingResampler(rate, sample_rate) if sample_rate and sample_rate != rate else None
        buf = np.empty((block_frames, self.info.channels), np.float32)
        try:
            f.seek(0)
            while True:
                x = f.read(block_frames, dtype="float32", always_2d=True, out=buf)
                if len(x) == 0:
                    break
                mono = _to_mono(p, x)
                yield rs.process(mono) if rs is not None else mono
        except RuntimeError as e:  # soundfile.LibsndfileError and seek errors: a corrupt stream
            raise AudioError(f"{p}: cannot decode: {_reason(e)}") from None
        if rs is not None:
            yield rs.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "error_string", "") or e)
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def _limit_problem(sample_rate: int, channels: int) -> str | None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return f"sample rate {sample_rate} Hz is outside the supported {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
    if not 1 <= channels <= MAX_CHANNELS:
        return f"{channels} channels (at most {MAX_CHANNELS} are supported)"
    return None


def _check_limits(p: Path, info: WavInfo) -> None:
    if problem := _limit_problem(info.sample_rate, info.channels):
        raise AudioError(f"{p}: {problem}")
    if info.frames == 0:
        raise AudioError(f"{p}: has no audio samples")


def _to_mono(p: Path, x: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> (frames,) float32 in [-1, 1]; non-finite or absurd values refused."""
    peak = float(np.max(np.abs(x)))  # NaN propagates
    if not np.isfinite(peak):
        raise AudioError(f"{p}: contains NaN or infinite samples")
    if peak > 1.0:
        if peak > OVER_LIMIT:
            raise AudioError(f"{p}: samples reach {peak:.3g}, far outside [-1, 1] (more than {OVER_LIMIT:g} is "
                             "refused: not audio scaled to full scale 1)")
        x = np.clip(x, -1.0, 1.0)
    return x[:, 0].copy() if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)


def read_wav_info(path: str | os.PathLike) -> WavInfo:
    """The header of an audio file (any format), checked against the limits; no samples decoded."""
    with AudioReader(path) as r:
        return r.info


def read_wav(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a whole audio file as mono float32 in [-1, 1]; resample to `sample_rate` when given.

    Returns (samples, rate). Multi-channel audio is averaged to mono. Files longer than
    MAX_READ_FRAMES (before or after resampling) are refused: stream them with `AudioReader`.
    """
    with AudioReader(path) as r:
        rate = r.info.sample_rate
        out_rate = int(sample_rate) if sample_rate else rate
        # An MP3's frame count can be an estimate: the running total is checked again below.
        limit = min(MAX_READ_FRAMES, int(MAX_READ_FRAMES * rate / out_rate))
        if r.info.frames > limit:
            raise AudioError(f"{r.path}: {r.info.duration_s:.0f} s is too long to read whole "
                             f"(at most {limit / rate:.0f} s at {rate} Hz)")
        parts, total = [], 0
        for block in r.blocks(out_rate):
            total += len(block)
            if total > MAX_READ_FRAMES:
                raise AudioError(f"{r.path}: too long to read whole (more than {MAX_READ_FRAMES} samples)")
            parts.append(block)
    if not parts:
        raise AudioError(f"{path}: has no audio samples")
    x = np.concatenate(parts) if len(parts) != 1 else parts[0]
    return np.ascontiguousarray(x, dtype=np.float32), out_rate


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float [-1, 1) -> int16 with clipping (the inverse of the /32768 scaling)."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, bits: int = 16) -> None:
    """Write mono or (frames, channels) audio atomically, in the format the extension names.

    .wav: bits 16 (PCM) or 32 (float). .flac: 16-bit. .ogg/.oga (Vorbis), .opus (Opus: 8, 12, 16, 24 or
    48 kHz only), .mp3: lossy, `bits` ignored. 16-bit samples are rounded exactly as `to_int16` does.
    """
    import soundfile as sf

    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, not {bits}")
    try:
        container, subtype = write_format(path)
    except ValueError as e:
        raise AudioError(str(e)) from None
    x = np.asarray(samples)
    if subtype == "PCM_16" and bits == 32:
        if container != "WAV":
            raise AudioError(f"{path}: 32-bit float samples need a .wav file")
        subtype = "FLOAT"
    if subtype == "PCM_16":
        data = to_int16(x)
    elif subtype == "FLOAT":
        data = x.astype(np.float32)  # kept as given, like any float writer (the reader clips mild overs)
    else:  # lossy encoders take float in [-1, 1]
        data = np.clip(x, -1.0, 1.0).astype(np.float32)
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), data, int(sample_rate), subtype=subtype, format=container)
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"{path}: cannot write: {getattr(e, 'strerror', None) or _reason(e)}") from None
