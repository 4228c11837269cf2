"""Microphone input through PyAudio (PortAudio), with the `blocks(hop)` interface of sources.py.

PyAudio is imported lazily, inside functions, so importing this module needs neither PyAudio
nor an audio device. The PortAudio callback only copies int16 samples into a preallocated
`RingBuffer` and counts overflows; conversion, channel averaging and resampling happen in the
thread that iterates `blocks()`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.audio.resample import StreamingResampler
from core.audio.ring import RingBuffer
from core.errors import AudioError

_MAX_HELD_S = 120.0  # largest ring (in seconds) allocated to hold all of `max_samples`


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    default_sample_rate: float
    max_output_channels: int = 0


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C libraries' chatter (JACK, ALSA probing) while PortAudio initialises."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _alsa_config_trap() -> str | None:
    """PortAudio 19.6 aborts the process (assertion in BuildDeviceList) when ALSA knows no pcm
    name at all: no sound card and an ALSA_CONFIG_PATH without any pcm definition. Detect it."""
    path = os.environ.get("ALSA_CONFIG_PATH")
    if not path or glob.glob("/proc/asound/card[0-9]*"):
        return None
    for f in path.split(":"):
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                if "pcm" in fh.read():
                    return None
        except OSError:
            continue
    return f"ALSA_CONFIG_PATH={path} defines no pcm device and there is no sound card"


def open_pyaudio(kind: str = "audio device") -> Any:
    """A `pyaudio.PyAudio()` instance, or an AudioError saying why there can be none."""
    trap = _alsa_config_trap()
    if trap:
        raise AudioError(f"no {kind} found: {trap} (PortAudio would abort the process)")
    try:
        import pyaudio
    except ImportError as e:
        raise AudioError(
            f"PyAudio is not installed ({e}); install portaudio19-dev, then pip install pyaudio"
        ) from None
    try:
        with _quiet_stderr():
            return pyaudio.PyAudio()
    except Exception as e:  # PortAudio's own initialisation error
        raise AudioError(f"cannot initialise PortAudio: {e}") from None


def _host_apis(pa: Any) -> str:
    return (
        ", ".join(pa.get_host_api_info_by_index(i)["name"] for i in range(pa.get_host_api_count())) or "none"
    )


def _devices(pa: Any) -> list[DeviceInfo]:
    out = []
    for i in range(pa.get_device_count()):
        d = pa.get_device_info_by_index(i)
        out.append(
            DeviceInfo(
                i,
                str(d["name"]),
                int(d["maxInputChannels"]),
                float(d["defaultSampleRate"]),
                int(d["maxOutputChannels"]),
            )
        )
    return out


def list_input_devices() -> list[DeviceInfo]:
    """Every device PortAudio can capture from (empty when there is none)."""
    pa = open_pyaudio()
    try:
        return [d for d in _devices(pa) if d.max_input_channels > 0]
    finally:
        pa.terminate()


def _default_device(pa: Any, output: bool) -> DeviceInfo | None:
    devices = _devices(pa)
    try:
        info = pa.get_default_output_device_info() if output else pa.get_default_input_device_info()
        return devices[int(info["index"])]
    except (OSError, IndexError):
        pass
    usable = [d for d in devices if (d.max_output_channels if output else d.max_input_channels) > 0]
    return usable[0] if usable else None


def default_input_device() -> DeviceInfo | None:
    """PortAudio's default input device (or the first one that can capture), None when none can."""
    pa = open_pyaudio()
    try:
        return _default_device(pa, output=False)
    finally:
        pa.terminate()


def resolve_device(pa: Any, device: int | str | None, *, output: bool = False) -> DeviceInfo:
    """Pick a device by index, by (part of its) name, or the default one; AudioError if impossible."""
    kind = "speaker" if output else "microphone"
    devices = _devices(pa)

    def usable(d: DeviceInfo) -> bool:
        return (d.max_output_channels if output else d.max_input_channels) > 0

    names = ", ".join(f"{d.index}: {d.name}" for d in devices if usable(d)) or "none"
    where = f"PortAudio host APIs {_host_apis(pa)}; {kind} devices: {names}"
    if device is None:
        found = _default_device(pa, output)
        if found is None:
            alsa = os.environ.get("ALSA_CONFIG_PATH")
            extra = f"; ALSA_CONFIG_PATH={alsa}" if alsa else ""
            raise AudioError(f"no {kind} found: tried the default device ({where}{extra})")
        return found
    if isinstance(device, int | np.integer) or (isinstance(device, str) and device.strip().isdigit()):
        i = int(device)
        if not 0 <= i < len(devices) or not usable(devices[i]):
            raise AudioError(f"no {kind} found: device index {i} is not a {kind} ({where})")
        return devices[i]
    matches = [d for d in devices if usable(d) and str(device).lower() in d.name.lower()]
    if not matches:
        raise AudioError(f"no {kind} found: no device named like {device!r} ({where})")
    return matches[0]


class MicrophoneSource:
    """Live capture as hop-sized float32 blocks at `sample_rate` (the model's rate).

    The stream is opened at `sample_rate` when the device accepts it, otherwise at `device_rate`
    (default: the device's default rate) and resampled. `max_samples` stops after that many
    device frames, `max_seconds` after that much audio (a file-backed ALSA device has no clock
    and repeats stale data past its end, so it needs one of them).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        device: int | str | None = None,
        device_rate: int | None = None,
        channels: int | None = None,
        max_samples: int | None = None,
        max_seconds: float | None = None,
        buffer_s: float = 5.0,
        frames_per_buffer: int = 512,
    ):
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, not {max_samples}")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, not {max_seconds}")
        self._max_seconds = max_seconds
        self.sample_rate = int(sample_rate)
        self.max_samples = max_samples
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._finished = False
        self._device_overflows = 0
        self._stream: Any = None
        self._pa = open_pyaudio("microphone")
        try:
            import pyaudio

            self._continue, self._complete = pyaudio.paContinue, pyaudio.paComplete
            self._overflow_flag = pyaudio.paInputOverflow
            self.device = resolve_device(self._pa, device)
            self.name = f"microphone {self.device.index}: {self.device.name}"
            self._open(pyaudio, device_rate, channels, frames_per_buffer, buffer_s)
        except BaseException:
            self.close()
            raise

    def _open(
        self, pyaudio: Any, device_rate: int | None, channels: int | None, fpb: int, buffer_s: float
    ) -> None:
        dev = self.device
        rates = [device_rate] if device_rate else [self.sample_rate, int(round(dev.default_sample_rate))]
        # mono first; a device that insists on more channels is averaged (128 = "any": not tried)
        chans = [channels] if channels else [1, 2] + [dev.max_input_channels] * (dev.max_input_channels <= 32)
        tried, errors = set(), []
        for rate in rates:
            for ch in chans:
                if (rate, ch) in tried or ch > dev.max_input_channels or ch < 1:
                    continue
                tried.add((rate, ch))
                try:
                    with _quiet_stderr():
                        self._stream = self._pa.open(
                            format=pyaudio.paInt16,
                            channels=ch,
                            rate=int(rate),
                            input=True,
                            input_device_index=dev.index,
                            frames_per_buffer=fpb,
                            stream_callback=self._callback,
                            start=False,
                        )
                except Exception as e:
                    errors.append(f"{rate} Hz x {ch} ch: {e}")
                    continue
                self.device_rate, self.channels = int(rate), int(ch)
                self._resampler = StreamingResampler(self.device_rate, self.sample_rate)
                if self._max_seconds is not None:
                    limit = max(1, int(round(self._max_seconds * rate)))
                    self.max_samples = min(limit, self.max_samples or limit)
                held = buffer_s * rate  # a clockless device delivers all of max_samples at once: hold them
                if self.max_samples is not None:
                    held = max(held, min(self.max_samples + fpb, _MAX_HELD_S * rate))
                self._ring = RingBuffer(int(held) * ch, dtype=np.int16)
                self._remaining = None if self.max_samples is None else self.max_samples * ch
                return
        raise AudioError(f"cannot open {self.name}: tried " + "; ".join(errors or ["no channel count fits"]))

    # PortAudio's thread: copy, count, return. No allocation of sample buffers, no logging.
    def _callback(self, in_data: bytes, frame_count: int, time_info: Any, status: int) -> tuple[None, int]:
        if status & self._overflow_flag:
            self._device_overflows += 1
        samples = np.frombuffer(in_data, dtype=np.int16)
        remaining = self._remaining
        if remaining is not None:
            take = min(len(samples), remaining)
            self._ring.write(samples[:take])
            self._remaining = remaining - take
            if remaining - take <= 0:
                self._finished = True
        else:
            self._ring.write(samples)
        if self._stop.is_set():
            self._finished = True
        self._ready.set()
        return None, self._complete if self._finished else self._continue

    @property
    def overflows(self) -> int:
        """Blocks lost so far: the reader fell behind the ring, or PortAudio reported an overrun."""
        ring = getattr(self, "_ring", None)
        return self._device_overflows + (ring.overflows if ring is not None else 0)

    def _stream_done(self) -> bool:
        if self._finished:
            return True
        try:
            return not self._stream.is_active()
        except Exception:
            return True

    def chunks(self, *, poll_s: float = 0.05) -> Iterator[np.ndarray]:
        """Captured audio as it arrives, float32 mono at `sample_rate`, in chunks of any size."""
        if self._stream is None:
            raise AudioError(f"{getattr(self, 'name', 'microphone')}: closed")
        ring, ch = self._ring, self.channels
        cursor = 0
        try:
            self._stream.start_stream()
        except Exception as e:
            raise AudioError(f"cannot start {self.name}: {e}") from None
        try:
            while not self._stop.is_set():
                self._ready.clear()
                done = self._stream_done()  # before reading the count: nothing written after is missed
                n = ring.available(cursor)
                n -= n % ch
                if n == 0:
                    if done:  # the capture ended: what the resampler still holds is the end of the signal
                        if len(tail := self._resampler.flush()):
                            yield tail
                        break
                    self._ready.wait(poll_s)
                    continue
                oldest = ring.oldest_index
                if cursor < oldest:  # fell behind: skip what was dropped (counted by the ring)
                    cursor = oldest + (-oldest) % ch
                    continue
                n = min(n, ring.capacity - ring.capacity % ch)
                raw = ring.read(cursor, n).astype(np.float32)
                if not ring.intact(cursor):  # lapped while copying
                    continue
                cursor += n
                ring.consume(cursor)
                x = raw.reshape(-1, ch).mean(axis=1) if ch > 1 else raw
                y = self._resampler.process(x * np.float32(1.0 / 32768.0))
                if len(y):
                    yield y.astype(np.float32, copy=False)
        finally:
            self._stop_stream()

    def blocks(self, hop: int) -> Iterator[np.ndarray]:
        """Hop-sized float32 blocks at `sample_rate`; a trailing partial hop is dropped."""
        if hop < 1:
            raise ValueError(f"hop must be >= 1, not {hop}")
        pending = np.zeros(0, dtype=np.float32)
        for chunk in self.chunks():
            pending = np.concatenate([pending, chunk]) if len(pending) else chunk
            k = len(pending) // hop
            for i in range(k):
                if self._stop.is_set():
                    return
                yield pending[i * hop : (i + 1) * hop].copy()
            pending = pending[k * hop :]

    def stop(self) -> None:
        """Ask `blocks()` / `chunks()` to end (from any thread); no block is yielded after this."""
        self._stop.set()
        self._ready.set()

    def _stop_stream(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop_stream()

    def close(self) -> None:
        """Stop and release the device (safe to call twice)."""
        self._stop.set()
        self._ready.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop_stream()
            with contextlib.suppress(Exception):
                stream.close()
        pa, self._pa = getattr(self, "_pa", None), None
        if pa is not None:
            with contextlib.suppress(Exception):
                pa.terminate()

    def __enter__(self) -> MicrophoneSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record(
    seconds: float,
    sample_rate: int = 16000,
    *,
    device: int | str | None = None,
    device_rate: int | None = None,
    max_samples: int | None = None,
) -> np.ndarray:
    """Record `seconds` of mono float32 audio at `sample_rate` (less if `max_samples` ends it first)."""
    want = int(round(seconds * sample_rate))
    parts, have = [], 0
    with MicrophoneSource(
        sample_rate, device=device, device_rate=device_rate, max_samples=max_samples, max_seconds=seconds
    ) as mic:
        for chunk in mic.chunks():
            parts.append(chunk)
            have += len(chunk)
            if have >= want:
                break
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return out[:want].astype(np.float32, copy=False)
