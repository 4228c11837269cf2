"""The streaming worker: source blocks -> KeywordSpotter.step -> Detector.update, on a QThread.

Only signals leave the worker; their payloads are frozen dataclasses holding read-only copies
of the arrays. Cancellation is cooperative (`threading.Event`); results are published in
batches at most every `publish_s` seconds, so a fast (non real-time) run cannot flood the GUI.
Settings the GUI may change while a stream runs (threshold, smoothing, ignored labels) go
through `StreamControls`, a lock-guarded value the worker polls once per frame.

Per frame the worker also measures the block's peak level (dBFS, clipping) and, when the
classifier has a VAD node, that node's 0/1 signal (computed by the node's own interpreter on
the features, so it is the same whichever backend runs the classifier). With `record_path`
every block is kept and written to that wav (atomically) when the stream ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PyQt5.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from core.audio.wav import write_wav
from core.errors import KwsError
from core.graph.interpreter import Interpreter
from core.pipeline import Detection, Detector, KeywordSpotter
from kwsgui.model_set import ModelSet, vad_probe

CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (int16 full scale is 0.99997)
SILENCE_DB = -100.0

log = logging.getLogger(__name__)

SourceFactory = Callable[[int], Any]  # sample_rate -> an object with blocks(hop) and close()


@dataclass(frozen=True)
class Batch:
    """Frames `first_frame .. first_frame + n - 1` of one stream."""

    first_frame: int
    features: np.ndarray  # (n, n_features) float32, read-only
    probs: np.ndarray | None  # (n, n_classes) float32, read-only; None without a classifier
    detections: tuple[Detection, ...]
    frame_duration_s: float
    step_ms_mean: float  # featurizer + classifier + detector, per frame, over this batch
    step_ms_max: float
    late_frames: int  # frames (so far) processed more than one hop behind the real-time schedule
    levels_db: np.ndarray | None = None  # (n,) peak level of each block in dBFS, read-only
    clipped: int = 0  # blocks of this batch with a clipped sample
    vad: np.ndarray | None = None  # (n,) 0/1 of the classifier's VAD node; None without one

    @property
    def n(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class StreamSummary:
    frames: int
    audio_s: float
    step_ms_mean: float
    detections: int
    cancelled: bool
    error: str | None = None
    recorded: str | None = None  # the wav written (record mode)


@dataclass(frozen=True)
class StreamInfo:
    """Sent once the models are ready: which backend runs and what the source is."""

    backend: str  # "compiled" or "interpreter"
    fallback_reason: str | None
    source: str
    has_vad: bool


class StreamControls:
    """Live settings shared with a running worker (GUI writes, worker reads once per frame)."""

    def __init__(self, threshold: float = 0.6, smoothing: int = 0, ignore: tuple[str, ...] = ()):
        self._lock = threading.Lock()
        self._values = (float(threshold), int(smoothing))
        self._ignore = tuple(ignore)
        self.version = 0

    def set(self, threshold: float, smoothing: int) -> None:
        with self._lock:
            self._values = (float(threshold), int(smoothing))
            self.version += 1

    def set_ignore(self, labels: tuple[str, ...] | list[str]) -> None:
        with self._lock:
            self._ignore = tuple(labels)
            self.version += 1

    @property
    def ignore(self) -> tuple[str, ...]:
        with self._lock:
            return self._ignore

    def get(self) -> tuple[int, float, int]:
        with self._lock:
            return (self.version, *self._values)

    def detector(self, labels: list[str]) -> tuple[int, Detector]:
        """(version, a Detector with the current settings); unknown ignore labels are dropped."""
        with self._lock:
            version, (threshold, smoothing), ignore = self.version, self._values, self._ignore
        return version, Detector(labels, threshold, smoothing, [lb for lb in ignore if lb in labels])


def _readonly(rows: list[np.ndarray]) -> np.ndarray:
    a = np.array(rows, dtype=np.float32)  # an owned copy
    a.setflags(write=False)
    return a


def _open_speaker(sample_rate: int, status: Callable[[str], None]) -> Any:
    """A core.audio.speaker.Speaker when that module and an output device exist, else None."""
    try:
        from core.audio.speaker import Speaker
    except ImportError:
        status("audio output is not available in this build: processing without sound")
        return None
    try:
        return Speaker(sample_rate)
    except KwsError as e:
        status(f"no audio output ({e}): processing without sound")
    except Exception as e:  # a broken audio stack must not stop the analysis
        status(f"no audio output ({type(e).__name__}: {e}): processing without sound")
    return None


class StreamWorker(QObject):
    """Runs one stream to its end (or until cancelled). Move it to a QThread, then start."""

    batch = pyqtSignal(object)  # Batch
    started = pyqtSignal(object)  # StreamInfo
    status = pyqtSignal(str)
    failed = pyqtSignal(str)
    finished = pyqtSignal(object)  # StreamSummary, always emitted last

    def __init__(self, models: ModelSet, open_source: SourceFactory, *, controls: StreamControls,
                 realtime: bool = True, speed: float = 1.0, live: bool = False, play_audio: bool = False,
                 publish_s: float = 0.03, backend: str = "auto", record_path: str | None = None,
                 source_name: str = ""):
        super().__init__()
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.models, self.open_source, self.controls = models, open_source, controls
        self.realtime, self.speed, self.live = realtime, float(speed), live
        self.play_audio, self.publish_s = play_audio, float(publish_s)
        self.backend, self.record_path, self.source_name = backend, record_path, source_name
        self.cancel = threading.Event()
        self._source: Any = None

    def stop(self) -> None:
        """Ask the stream to end (any thread); a live source is told to stop blocking too."""
        self.cancel.set()
        stop = getattr(self._source, "stop", None)
        if callable(stop):
            try:
                stop()
            except Exception:  # the worker closes the source anyway
                log.debug("source stop failed", exc_info=True)

    @pyqtSlot()
    def run(self) -> None:
        summary = StreamSummary(0, 0.0, 0.0, 0, cancelled=False)
        self._recorded: list[np.ndarray] = []
        try:
            summary = self._run()
        except KwsError as e:
            summary = StreamSummary(0, 0.0, 0.0, 0, cancelled=False, error=str(e))
            self.failed.emit(str(e))
        except Exception as e:  # a bug: keep the app alive, but leave the traceback in the log
            log.exception("streaming worker failed")
            msg = f"{type(e).__name__}: {e}"
            summary = StreamSummary(0, 0.0, 0.0, 0, cancelled=False, error=msg)
            self.failed.emit(msg)
        finally:
            if self.record_path is not None:
                summary = self._save_recording(summary)
            self.finished.emit(summary)
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()  # run() is called from `started`: quit before exec() returns at once

    def _save_recording(self, summary: StreamSummary) -> StreamSummary:
        """Write what was recorded (also after an error or Stop): nothing captured is lost."""
        blocks, self._recorded = self._recorded, []
        if not blocks:
            return summary
        try:
            write_wav(self.record_path, np.concatenate(blocks), self.models.sample_rate)
        except KwsError as e:
            self.failed.emit(str(e))
            return StreamSummary(summary.frames, summary.audio_s, summary.step_ms_mean, summary.detections,
                                 summary.cancelled, summary.error or str(e))
        return StreamSummary(summary.frames, summary.audio_s, summary.step_ms_mean, summary.detections,
                             summary.cancelled, summary.error, recorded=str(self.record_path))

    def _run(self) -> StreamSummary:
        m = self.models
        spotter = KeywordSpotter(m.featurizer, m.classifier, backend=self.backend)
        labels = list(m.labels)
        version, detector = self.controls.detector(labels) if m.classifier is not None else (0, None)
        probe_graph = vad_probe(m.classifier) if m.classifier is not None else None
        probe = Interpreter(probe_graph) if probe_graph is not None else None
        hop, rate = spotter.hop_length, spotter.sample_rate
        dt = hop / rate
        source = self._source = self.open_source(rate)
        name = self.source_name or str(getattr(source, "name", "") or "")
        self.started.emit(StreamInfo(spotter.backend, spotter.fallback_reason, name, probe is not None))
        speaker = _open_speaker(rate, self.status.emit) if self.play_audio else None
        recording = self.record_path is not None
        feats: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        dets: list[Detection] = []
        steps: list[float] = []
        levels: list[float] = []
        vads: list[float] = []
        frame = first = late = n_det = clipped = 0
        total_step = 0.0
        period = dt / self.speed
        paced = self.realtime and not self.live
        try:
            if self.cancel.is_set():
                return StreamSummary(0, 0.0, 0.0, 0, cancelled=True)
            t0 = last_pub = time.monotonic()
            for block in source.blocks(hop):
                if self.cancel.is_set():
                    break
                if paced:  # block k is "recorded" at t0 + (k+1) * period: absolute, so no drift
                    delay = t0 + (frame + 1) * period - time.monotonic()
                    if delay > 0:
                        if self.cancel.wait(delay):
                            break
                    elif delay < -period:
                        late += 1
                if speaker is not None:
                    speaker.write(block)
                if recording:
                    self._recorded.append(np.array(block, dtype=np.float32))
                peak = float(np.max(np.abs(block))) if len(block) else 0.0
                levels.append(20.0 * np.log10(peak) if peak > 1e-5 else SILENCE_DB)
                clipped += peak >= CLIP_LEVEL
                v = self.controls.version
                if detector is not None and v != version:
                    version, detector = self.controls.detector(labels)
                s0 = time.perf_counter()
                f, p = spotter.step(block)
                det = detector.update(p) if detector is not None else None
                step = time.perf_counter() - s0
                total_step += step
                steps.append(step)
                feats.append(f)
                if probe is not None:
                    vads.append(float(probe.step(f)[0]))
                if p is not None:
                    probs.append(p)
                if det is not None:
                    dets.append(Detection(frame, det.index, det.label, det.probability))
                frame += 1
                now = time.monotonic()
                if now - last_pub >= self.publish_s:
                    self._publish(first, feats, probs, dets, steps, dt, late, levels, clipped, vads)
                    n_det += len(dets)
                    first, last_pub = frame, now
                    feats, probs, dets, steps, levels, vads, clipped = [], [], [], [], [], [], 0
            if feats:
                self._publish(first, feats, probs, dets, steps, dt, late, levels, clipped, vads)
                n_det += len(dets)
        finally:
            self._source = None
            if speaker is not None:
                speaker.close()
            source.close()
        mean_ms = 1000 * total_step / frame if frame else 0.0
        return StreamSummary(frame, frame * dt, mean_ms, n_det, cancelled=self.cancel.is_set())

    def _publish(self, first: int, feats: list, probs: list, dets: list, steps: list, dt: float,
                 late: int, levels: list, clipped: int, vads: list) -> None:
        self.batch.emit(Batch(
            first_frame=first,
            features=_readonly(feats),
            probs=_readonly(probs) if probs else None,
            detections=tuple(dets),
            frame_duration_s=dt,
            step_ms_mean=1000 * float(np.mean(steps)),
            step_ms_max=1000 * float(np.max(steps)),
            late_frames=late,
            levels_db=_readonly(levels),
            clipped=int(clipped),
            vad=_readonly(vads) if vads else None,
        ))


class StreamThread:
    """Owns one worker and its QThread: start, ask to stop, join. Keep it referenced until
    `thread.finished` (a QThread garbage-collected while running aborts the process)."""

    def __init__(self, worker: StreamWorker):
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName("kwsgui-stream")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop()

    def join(self, timeout_ms: int = 5000) -> bool:
        """Stop and wait for the thread to end; True when it did."""
        self.worker.stop()
        self.thread.quit()
        return bool(self.thread.wait(timeout_ms))

    def is_running(self) -> bool:
        return self.thread.isRunning()
