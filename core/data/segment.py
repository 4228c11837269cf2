"""Cut spoken words out of a long recording: energy on the features, 1 s clips centred on each word.

The level of each frame comes from a mel filterbank with the featurizer's own framing (sample rate,
window, hop: frame t covers the samples [(t+1) hop - window, (t+1) hop)), so a cut lines up with the
frames a dataset row is made of. Per frame:

    level_db  = 10 log10(sum of squared mel magnitudes over 100 Hz .. 7 kHz), 0 dB = a full-scale sine
    floor_db  = a low percentile of the levels of the last `floor_window_s` (at least `floor_min_db`)

A word starts where the level rises `on_db` above the floor and lasts while it stays `off_db` above
it (hysteresis; the start is extended back over frames still above `off_db`); a part that follows
within `merge_ms` belongs to the same word (the closure of "happy", the released "t" of "cat"; it needs
only `off_db`) unless that would make the word longer than `max_word_s`; words shorter than
`min_word_ms` (clicks) are dropped. A word's centre is the centre of its power above the floor (the
loud vowel weighs most, as in Speech Commands' loudest-second cut); its clip of `clip_s` is centred
there, moved as little as needed to hold the whole word, and kept inside the recording.

`Segmenter` is streaming (push audio as it comes, words come out once `merge_ms` of quiet has
followed them and the audio for their clip is in); `segment_samples` is the same run over a whole
array. The floor of the first `prime_s` uses the levels of those frames, so a stream decides them
once that much has arrived.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from core.audio.wav import write_wav
from core.errors import AudioError, DataError
from core.features.featurizer import FeaturizerConfig, build_featurizer
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph

BAND_HZ = (100.0, 7000.0)  # speech band of the level (rumble and hiss outside it do not count)
_TINY = 1e-20


@dataclass(frozen=True)
class Framing:
    """The featurizer's framing: frame t covers samples [(t+1) hop - window, (t+1) hop)."""

    sample_rate: int = 16000
    window_size: int = 512
    hop_length: int = 512

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"framing {f.name} must be a positive integer, got {v!r}")

    @property
    def frame_s(self) -> float:
        return self.hop_length / self.sample_rate

    @classmethod
    def of(cls, featurizer: Graph, sample_rate: int | None = None) -> Framing:
        """The framing of a featurizer graph (ours or imported)."""
        meta = featurizer.metadata
        cfg = meta.get("featurizer") if isinstance(meta.get("featurizer"), dict) else {}
        sr = sample_rate or meta.get("sample_rate") or cfg.get("sample_rate") or 16000
        fb = featurizer.by_op("frame_buffer")
        hop = int(featurizer.input_size)
        window = int(fb[0].attrs["window_size"]) if fb else int(cfg.get("window_size") or hop)
        return cls(int(sr), window, hop)


@dataclass(frozen=True)
class SegmentConfig:
    on_db: float = 12.0  # a word starts this far above the noise floor
    off_db: float = 6.0  # ... and lasts while the level stays this far above it
    merge_ms: float = 300.0  # quieter gaps shorter than this stay inside one word (the "t" of "cat")
    min_word_ms: float = 70.0  # shorter bursts (clicks, knocks) are not words
    max_word_s: float = 1.0  # merging never makes a word longer than this
    clip_s: float = 1.0  # length of each cut clip, centred on the word
    floor_window_s: float = 5.0  # the noise floor is a low percentile over this much recent audio
    floor_percentile: float = 10.0
    floor_min_db: float = -70.0  # the floor never goes below this (digital silence)
    prime_s: float = 1.0  # the first frames' floor waits for this much audio

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"segment {f.name} must be a finite number, got {v!r}")
        for name in ("on_db", "clip_s", "floor_window_s", "max_word_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"segment {name} must be positive, got {getattr(self, name)}")
        for name in ("off_db", "merge_ms", "min_word_ms", "prime_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"segment {name} must not be negative, got {getattr(self, name)}")
        if self.off_db > self.on_db:
            raise ValueError(f"segment off_db ({self.off_db}) must not exceed on_db ({self.on_db})")
        if not 0 <= self.floor_percentile <= 50:
            raise ValueError(f"segment floor_percentile must be in [0, 50], got {self.floor_percentile}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Utterance:
    """One word found: its times in the recording, its clip and levels."""

    index: int  # 0, 1, ... in the order found
    start_s: float  # the word's first and last frame (edges of their hops)
    end_s: float
    centre_s: float  # centre of the word's energy above the noise floor
    clip_start_s: float  # the clip covers [clip_start_s, clip_start_s + clip_s)
    samples: np.ndarray  # (clip_s * sample_rate,) float32
    sample_rate: int
    level_db: float  # mean level of the word's frames (0 dB = a full-scale sine)
    snr_db: float  # that level above the noise floor
    peak: float  # largest |sample| of the clip (1.0 = full scale)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def summary(self) -> dict:
        return {"index": self.index, "start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6),
                "centre_s": round(self.centre_s, 6), "clip_start_s": round(self.clip_start_s, 6),
                "level_db": round(self.level_db, 2), "snr_db": round(self.snr_db, 2), "peak": round(self.peak, 4)}


@functools.lru_cache(maxsize=8)
def level_featurizer(framing: Framing) -> tuple[Graph, np.ndarray, float]:
    """(mel power featurizer with this framing, weights of the band's filters, 0 dB reference); made
    once per framing (the graph is only read: each Segmenter runs its own Interpreter on it)."""
    cfg = FeaturizerConfig(sample_rate=framing.sample_rate, window_size=framing.window_size,
                           hop_length=framing.hop_length, filterbank="mel", n_filters=40, log=False,
                           power_spec=True)
    graph = build_featurizer(cfg)
    fb = graph.by_op("filterbank")[0].params["weights"]  # (n_filters, n_bins)
    bin_hz = np.arange(fb.shape[1]) * framing.sample_rate / cfg.fft_size
    centre = (fb * bin_hz).sum(1) / np.maximum(fb.sum(1), _TINY)
    band = ((centre >= BAND_HZ[0]) & (centre <= min(BAND_HZ[1], 0.45 * framing.sample_rate))).astype(np.float64)
    t = np.arange(framing.window_size + 2 * framing.hop_length) / framing.sample_rate
    sine = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)  # full scale, 1 kHz
    rt = Interpreter(graph)
    n = len(sine) // framing.hop_length
    power = rt.run(sine[: n * framing.hop_length].reshape(n, -1)).astype(np.float64)
    ref = 10 * math.log10(float(power[-1] @ band) + _TINY)
    return graph, band, ref


class Segmenter:
    """Streaming word cutter: `push(samples)` returns the words completed so far, `flush()` the rest.

    Keeps all frame levels (8 bytes a frame: 2 MB for two hours at 32 ms) and only the audio still
    needed for clips not yet cut."""

    def __init__(self, framing: Framing, config: SegmentConfig = SegmentConfig()):
        self.framing, self.config = framing, config
        graph, self._band, self._ref_db = level_featurizer(framing)
        self._rt = Interpreter(graph)
        fs = framing.frame_s
        self._window = max(1, round(config.floor_window_s / fs))
        self._prime = max(1, round(config.prime_s / fs))
        self._merge = round(config.merge_ms / 1000 / fs)
        self._min_frames = max(1, math.ceil(config.min_word_ms / 1000 / fs - 1e-9))
        self._max_frames = max(1, math.floor(config.max_word_s / fs + 1e-9))
        self.clip_length = round(config.clip_s * framing.sample_rate)
        self.levels: list[float] = []  # dB per frame
        self.floors: list[float] = []  # dB per decided frame
        self._pending_audio = np.zeros(0, np.float32)  # less than one hop, not yet featurized
        self._audio = np.zeros(0, np.float32)  # samples [_audio_start, _audio_start + len)
        self._audio_start = 0
        self._total = 0  # samples pushed
        self._inside = False
        self._start = self._end = -1  # the open word's frames
        self._held: tuple[int, int] | None = None  # a finished part that a close next part may join
        self._ready: list[tuple[int, int]] = []  # finished words waiting for their clip's audio
        self._count = 0
        self._flushed = False

    # ------------------------------------------------------------ frames

    @property
    def frames(self) -> int:
        return len(self.levels)

    def _frame_edges(self, first: int, last: int) -> tuple[int, int]:
        """Sample span of frames first..last: the hops they end on, centred in their windows."""
        h, w = self.framing.hop_length, self.framing.window_size
        centre = lambda t: (t + 1) * h - w / 2  # noqa: E731
        return max(0, int(round(centre(first) - h / 2))), int(round(centre(last) + h / 2))

    def _floor(self, t: int) -> float:
        hi = min(max(t + 1, self._prime), len(self.levels))
        lo = max(0, t + 1 - self._window) if t + 1 >= self._prime else 0
        f = float(np.percentile(self.levels[lo:hi], self.config.floor_percentile))
        return max(f, self.config.floor_min_db)

    def _decide(self, t: int) -> None:
        """Run the state machine over frame t (its floor is known)."""
        cfg = self.config
        lv, fl = self.levels[t], self._floor(t)
        self.floors.append(fl)
        if self._held is not None and not self._inside and t - self._held[1] > self._merge:
            self._finish(*self._held)
            self._held = None
        if self._inside:
            if lv > fl + cfg.off_db:
                self._end = t
                return
            self._inside = False
            self._held = (self._start, self._end)
            return
        if self._held is not None and lv > fl + cfg.off_db and t - self._held[0] + 1 <= self._max_frames:
            self._inside, self._start, self._end = True, self._held[0], t  # the word goes on (a final "ks")
            self._held = None
            return
        if lv > fl + cfg.on_db:
            start = t
            lowest = max(self._held[1] + 1 if self._held is not None else 0, t - self._max_frames)
            while start - 1 >= lowest and self.levels[start - 1] > self.floors[start - 1] + cfg.off_db:
                start -= 1
            if self._held is not None and t - self._held[0] + 1 <= self._max_frames:
                start = self._held[0]  # a close second part of the same word
            elif self._held is not None:
                self._finish(*self._held)
            self._held = None
            self._inside, self._start, self._end = True, start, t

    def _finish(self, first: int, last: int) -> None:
        if last - first + 1 >= self._min_frames:
            self._ready.append((first, last))

    # ------------------------------------------------------------ audio in, words out

    def push(self, samples: np.ndarray) -> list[Utterance]:
        """Feed audio (float32 in [-1, 1], the framing's sample rate); returns the words completed."""
        if self._flushed:
            raise RuntimeError("Segmenter.push after flush(): make a new Segmenter")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if len(x) and not np.isfinite(x).all():
            raise AudioError("audio with NaN or infinite samples cannot be segmented")
        self._audio = np.concatenate([self._audio, x])
        self._total += len(x)
        data = np.concatenate([self._pending_audio, x])
        h = self.framing.hop_length
        n = len(data) // h
        self._pending_audio = data[n * h:]
        if n:
            power = self._rt.run(data[: n * h].reshape(n, h)).astype(np.float64)  # (n, n_filters)
            lv = 10 * np.log10(power @ self._band + _TINY) - self._ref_db
            self.levels.extend(lv.tolist())
        decidable = len(self.levels) if len(self.levels) >= self._prime else 0
        for t in range(len(self.floors), decidable):
            self._decide(t)
        return self._emit(final=False)

    def flush(self) -> list[Utterance]:
        """End of the audio: decide every frame left, close the open word, cut every clip."""
        if not self._flushed:
            for t in range(len(self.floors), len(self.levels)):
                self._decide(t)
            if self._inside:
                self._inside = False
                self._held = (self._start, self._end)
            if self._held is not None:
                self._finish(*self._held)
                self._held = None
            self._flushed = True
        return self._emit(final=True)

    def _emit(self, final: bool) -> list[Utterance]:
        out = []
        while self._ready:
            first, last = self._ready[0]
            u = self._cut(first, last, final)
            if u is None:
                break
            self._ready.pop(0)
            out.append(u)
        self._trim()
        return out

    def _cut(self, first: int, last: int, final: bool) -> Utterance | None:
        sr, n, h, w = self.framing.sample_rate, self.clip_length, self.framing.hop_length, self.framing.window_size
        a, b = self._frame_edges(first, last)
        seg = np.asarray(self.levels[first: last + 1])
        floors = np.asarray(self.floors[first: last + 1])
        above = np.maximum(10 ** (seg / 10) - 10 ** (floors / 10), 0.0)  # the word's power over the noise
        centres = (np.arange(first, last + 1) + 1) * h - w / 2
        centre = float(above @ centres / above.sum()) if above.sum() > 0 else (a + b) / 2
        start = int(round(centre - n / 2))
        if b - a <= n:  # the whole word fits: move the clip as little as needed to hold it
            start = min(max(start, b - n), a)
        if final:  # the whole recording is known: keep the clip inside it when it is long enough
            start = min(start, self._total - n)
        start = max(0, start)
        if not final and start + n > self._total:
            return None
        lo = start - self._audio_start
        clip = self._audio[max(0, lo): lo + n]
        if len(clip) < n:  # a recording shorter than one clip: pad with silence
            clip = np.concatenate([clip, np.zeros(n - len(clip), np.float32)])
        level = float(10 * np.log10(np.mean(10 ** (seg / 10)) + _TINY))
        u = Utterance(self._count, a / sr, b / sr, centre / sr, start / sr, clip.astype(np.float32, copy=True), sr,
                      level, level - float(np.mean(floors)), float(np.max(np.abs(clip))) if len(clip) else 0.0)
        self._count += 1
        return u

    def _trim(self) -> None:
        """Drop audio no word can still need (keep a clip's length before any word not yet cut)."""
        firsts = [f for f, _ in self._ready]
        if self._held is not None:
            firsts.append(self._held[0])
        if self._inside:
            firsts.append(self._start)
        undecided = len(self.floors)
        earliest = min(firsts + [max(0, undecided - self._max_frames - 1)])
        keep_from = max(0, self._frame_edges(earliest, earliest)[0] - self.clip_length)
        drop = keep_from - self._audio_start
        if drop > 0:
            self._audio = self._audio[drop:]
            self._audio_start = keep_from


def segment_samples(samples: np.ndarray, framing: Framing, config: SegmentConfig = SegmentConfig()) -> list[Utterance]:
    """Every word of a whole recording (already at the framing's sample rate)."""
    seg = Segmenter(framing, config)
    return seg.push(samples) + seg.flush()


def segment_blocks(blocks: Iterable[np.ndarray], framing: Framing, config: SegmentConfig = SegmentConfig(),
                   cancel=None) -> Iterator[Utterance]:
    """Words as they complete while audio blocks arrive (a file read block by block, a microphone)."""
    from core.progress import check_cancel

    seg = Segmenter(framing, config)
    for block in blocks:
        check_cancel(cancel)
        yield from seg.push(block)
    yield from seg.flush()


def file_chunks(path: str | os.PathLike, framing: Framing,
                progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    """An audio file at the framing's rate, about a second a chunk (any length: read block by block);
    progress in seconds of audio."""
    from core.audio.sources import WavSource

    src = WavSource(path, framing.sample_rate)
    sr = framing.sample_rate
    total_s = max(1, math.ceil(src.duration_s))
    buf, n, done = [], 0, 0
    for b in src.blocks(framing.hop_length):
        buf.append(b)
        n += len(b)
        if n >= sr:
            done += n
            yield np.concatenate(buf)
            if progress:
                progress(min(done // sr, total_s), total_s)
            buf, n = [], 0
    if buf:
        yield np.concatenate(buf)
    if progress:
        progress(total_s, total_s)


def segment_file(path: str | os.PathLike, framing: Framing, config: SegmentConfig = SegmentConfig(),
                 cancel=None, progress: Callable[[int, int], None] | None = None) -> list[Utterance]:
    """Every word of an audio file, read block by block (any length, any format the app reads)."""
    return list(segment_blocks(file_chunks(path, framing, progress), framing, config, cancel))


# ---------------------------------------------------------------- writing clips

def safe_label(label: str) -> str:
    """A label usable as a folder name (one path component, no hidden or special names)."""
    name = label.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith((".", "_")) or "\0" in name:
        raise DataError(f"{label!r}: not a usable label (one word, no '/', not starting with '.' or '_')")
    return name


def clip_name(speaker: str, number: int) -> str:
    """Speech Commands style: SPEAKER_nohash_N.wav (lists split by the part before _nohash_)."""
    return f"{speaker}_nohash_{number}.wav"


def next_free(folder: Path, speaker: str) -> int:
    """One more than the largest N of the SPEAKER_nohash_N.wav files in `folder` (0 when none)."""
    pattern = re.compile(re.escape(speaker) + r"_nohash_(\d+)\.wav")
    nums = [int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else ()) if (m := pattern.fullmatch(p.name))]
    return max(nums) + 1 if nums else 0


def speaker_name(text: str) -> str:
    """A speaker id for file names: letters, digits and '-' (others become '-'), never empty."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", text.replace("_nohash_", "-")).strip("-")
    return name or "clip"


def write_clips(utterances: Iterable[Utterance], outdir: str | os.PathLike, label: str, speaker: str) -> list[Path]:
    """Each clip to OUTDIR/LABEL/SPEAKER_nohash_N.wav (16-bit, atomic), numbered after existing ones."""
    folder = Path(outdir) / safe_label(label)
    speaker = speaker_name(speaker)
    n = next_free(folder, speaker)
    out = []
    for u in utterances:
        path = folder / clip_name(speaker, n)
        try:
            write_wav(path, u.samples, u.sample_rate)
        except OSError as e:
            raise DataError(f"{path}: cannot write clip: {e.strerror or e}") from None
        out.append(path)
        n += 1
    return out


def collect_words(chunks: Iterable[np.ndarray], framing: Framing, config: SegmentConfig = SegmentConfig(), *,
                  outdir: str | os.PathLike | None = None, label: str = "", speaker: str = "clip", cancel=None,
                  on_word: Callable[[Utterance, Path | None], None] | None = None,
                  on_level: Callable[[float], None] | None = None) -> list[tuple[Utterance, Path | None]]:
    """Segment audio as it arrives (a microphone's chunks, a file's blocks) and write each word's clip
    the moment it is complete (OUTDIR/LABEL/SPEAKER_nohash_N.wav; nothing written without `outdir`).
    `on_word(utterance, path)` hears each word, `on_level(peak dBFS)` each chunk. When `cancel` (a
    threading.Event) is set the audio so far is still segmented to its end (Stop keeps what was said)."""
    seg = Segmenter(framing, config)
    out: list[tuple[Utterance, Path | None]] = []

    def done(words: list[Utterance]) -> None:
        for u in words:
            path = write_clips([u], outdir, label, speaker)[0] if outdir is not None else None
            out.append((u, path))
            if on_word:
                on_word(u, path)

    if outdir is not None:
        safe_label(label)
    for chunk in chunks:
        if cancel is not None and cancel.is_set():
            break
        if on_level and len(chunk):
            on_level(20 * math.log10(max(float(np.max(np.abs(chunk))), 1e-10)))
        done(seg.push(chunk))
    done(seg.flush())
    return out
