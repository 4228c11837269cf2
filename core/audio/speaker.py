"""Audio output through PyAudio, and real-time pacing of any source.

`Speaker` plays float32 blocks on an output device (blocking writes from the caller's thread),
or, with `allow_silent=True` and no device, only keeps real-time pace. `PacedSource` wraps a
source so its blocks arrive at the pace a microphone would deliver them (block i when its last
sample "has been recorded"), which lets a wav file run through the live pipeline.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from core.audio.microphone import _quiet_stderr, open_pyaudio, resolve_device
from core.audio.resample import StreamingResampler, resample
from core.audio.wav import to_int16
from core.errors import AudioError


class Pacer:
    """Absolute-time schedule: `wait_until(n)` returns when n samples' worth of time has passed
    since the first call. Targets are absolute, so a late caller catches up and never drifts."""

    def __init__(
        self,
        sample_rate: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ):
        self.sample_rate, self.clock, self.sleep = int(sample_rate), clock, sleep
        self.t0: float | None = None

    def restart(self) -> None:
        self.t0 = None

    def wait_until(self, n_samples: int) -> None:
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        delay = self.t0 + n_samples / self.sample_rate - now
        if delay > 0:
            self.sleep(delay)


class Speaker:
    """Plays mono float32 audio at `sample_rate` on an output device (int16, mono or duplicated
    to stereo; resampled when the device refuses the rate)."""

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        device: int | str | None = None,
        allow_silent: bool = False,
        realtime: bool = True,
        frames_per_buffer: int = 1024,
    ):
        self.sample_rate = int(sample_rate)
        self.realtime = realtime
        self.frames_per_buffer = int(frames_per_buffer)
        self._stream: Any = None
        self._pa: Any = None
        self._pacer = Pacer(self.sample_rate)
        self._played = 0
        self.silent, self.reason, self.device = False, "", None
        try:
            self._pa = open_pyaudio("speaker")
            self.device = resolve_device(self._pa, device, output=True)
        except AudioError as e:
            self.close()
            if not allow_silent:
                raise
            self.silent, self.reason, self.name = True, str(e), "silent speaker"
            return
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        import pyaudio

        dev = self.device
        self.name = f"speaker {dev.index}: {dev.name}"
        errors = []
        for rate in dict.fromkeys([self.sample_rate, int(round(dev.default_sample_rate))]):
            for ch in (1, 2):
                if ch > dev.max_output_channels:
                    continue
                try:
                    with _quiet_stderr():
                        self._stream = self._pa.open(
                            format=pyaudio.paInt16,
                            channels=ch,
                            rate=rate,
                            output=True,
                            output_device_index=dev.index,
                            frames_per_buffer=self.frames_per_buffer,
                        )
                except Exception as e:
                    errors.append(f"{rate} Hz x {ch} ch: {e}")
                    continue
                self.device_rate, self.channels = rate, ch
                self._resampler = StreamingResampler(self.sample_rate, rate)
                return
        raise AudioError(f"cannot open {self.name}: tried " + "; ".join(errors))

    def write(self, block: np.ndarray) -> None:
        """Play one block (blocks while the device buffer is full, or paces when silent)."""
        x = np.asarray(block, dtype=np.float32)
        if self.silent:
            if self.realtime:
                self._pacer.wait_until(self._played)
                self._played += len(x)
            else:  # unpaced audio is "played" at once; pacing restarts from the next paced write
                self._pacer.restart()
                self._played = 0
            return
        if self._stream is None:
            raise AudioError(f"{self.name}: closed")
        y = to_int16(self._resampler.process(x))
        if self.channels == 2:
            y = np.repeat(y, 2)
        try:
            self._stream.write(y.tobytes())
        except Exception as e:
            raise AudioError(f"{self.name}: cannot play: {e}") from None
        self._played += len(x)

    def play(self, samples: np.ndarray, sample_rate: int | None = None, realtime: bool | None = None) -> None:
        """Play a whole signal (resampled from `sample_rate` when it differs) and wait for the end."""
        x = np.asarray(samples, dtype=np.float32)
        if sample_rate is not None and sample_rate != self.sample_rate:
            x = resample(x, sample_rate, self.sample_rate)
        keep = self.realtime
        if realtime is not None:
            self.realtime = realtime
        try:
            step = self.frames_per_buffer
            for i in range(0, len(x), step):
                self.write(x[i : i + step])
            if self.silent and self.realtime:
                self._pacer.wait_until(self._played)
            else:
                self.drain()
        finally:
            self.realtime = keep

    def _write_tail(self) -> None:
        """Play what the resampler still holds back (the last few ms of what was written)."""
        if self._stream is not None and len(tail := self._resampler.flush()):
            y = to_int16(tail)
            with contextlib.suppress(Exception):
                self._stream.write((np.repeat(y, 2) if self.channels == 2 else y).tobytes())

    def drain(self) -> None:
        """Wait until everything written has been played (restarts the stream for later writes)."""
        self._write_tail()
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop_stream()
                self._stream.start_stream()

    def close(self) -> None:
        self._write_tail()
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop_stream()  # plays what is buffered
            with contextlib.suppress(Exception):
                stream.close()
        pa, self._pa = self._pa, None
        if pa is not None:
            with contextlib.suppress(Exception):
                pa.terminate()

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Source(Protocol):
    sample_rate: int

    def blocks(self, hop: int) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...


class PacedSource:
    """Yields a source's blocks at real-time pace (block i once (i+1)*hop samples of time have
    passed), optionally playing them on a `Speaker`. `stop()` ends the iteration promptly."""

    def __init__(
        self,
        source: _Source,
        realtime: bool = True,
        *,
        speaker: Speaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ):
        self.source, self.realtime, self.speaker = source, realtime, speaker
        self.sample_rate = source.sample_rate
        self.name = getattr(source, "name", "source")
        self._stop = threading.Event()
        self._clock, self._sleep = clock, sleep if sleep is not None else self._stop.wait

    def blocks(self, hop: int) -> Iterator[np.ndarray]:
        pacer = Pacer(self.sample_rate, self._clock, self._sleep)
        pacer.wait_until(0)  # start the clock now
        done = 0
        for block in self.source.blocks(hop):
            if self._stop.is_set():
                return
            if self.speaker is not None:
                self.speaker.write(block)
            done += len(block)
            if self.realtime:
                pacer.wait_until(done)
                if self._stop.is_set():
                    return
            yield block

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.source.close()
