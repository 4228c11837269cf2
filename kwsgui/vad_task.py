"""The VAD panel's jobs (Qt-free): featurize a clip, record one from the microphone, auto-tune
the parameters on labelled clips (core.vad.tune)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import KwsError
from core.vad.params import VadParams


@dataclass(frozen=True)
class Clip:
    path: str
    features: np.ndarray  # (frames, n_features) float32, read-only
    frame_duration_s: float


def load_clip_job(models, path: str, ctx) -> Clip:
    from core.audio.wav import read_wav
    from core.features.featurizer import featurize

    ctx.stage(f"featurizing {Path(path).name}")
    x, _ = read_wav(path, models.sample_rate)
    f = np.array(featurize(models.featurizer, x), dtype=np.float32)
    if not len(f):
        raise KwsError(f"{path}: shorter than one {models.hop_length}-sample hop")
    f.setflags(write=False)
    return Clip(path, f, models.frame_duration_s)


def record_job(models, seconds: float, path: str, device, ctx) -> Clip:
    from core.audio.microphone import MicrophoneSource
    from core.audio.wav import write_wav

    ctx.stage(f"recording {seconds:g} s", 0, int(seconds * 10))
    parts, have, want = [], 0, int(seconds * models.sample_rate)
    with MicrophoneSource(models.sample_rate, device=device, max_seconds=seconds) as mic:
        for chunk in mic.chunks():
            if ctx.cancelled:
                break
            parts.append(chunk)
            have += len(chunk)
            ctx.progress(min(have, want) * 10 // models.sample_rate, int(seconds * 10), "recording")
            if have >= want:
                break
    x = np.concatenate(parts)[:want] if parts else np.zeros(0, np.float32)
    write_wav(path, x, models.sample_rate)  # atomic; what was captured is kept even after Stop
    ctx.log(f"recorded {len(x) / models.sample_rate:.2f} s to {path}")
    return load_clip_job(models, path, ctx)


def tune_job(models, list_file: str, noise_dir: str | None, start: VadParams, trials: int, objective: str,
             ctx):
    from core.audio.sources import list_wavs
    from core.evaluate.passrate import read_list
    from core.vad.tune import prepare, tune_vad

    clips = read_list(list_file)
    noise = list_wavs(noise_dir) if noise_dir else None
    clf = models.classifier if objective == "accuracy" else None
    if objective == "accuracy" and clf is None:
        raise KwsError("tuning for accuracy needs a classifier in the live view (or choose f1)")
    ctx.stage(f"featurizing {len(clips)} clips into streams")
    data = prepare(models.featurizer, clf, list(models.labels), clips, sample_rate=models.sample_rate,
                   noise_files=noise, snrs=(20.0, 10.0) if noise else (20.0,), backend="auto",
                   progress=lambda d, t: ctx.progress(d, t, "streams"), cancel=ctx.cancel)
    ctx.log(f"{data.n_words} words in {len(data.streams)} stream(s); {trials} trials, objective {objective}")
    result = tune_vad(data, start, trials=trials, objective=objective,
                      progress=lambda d, t: ctx.progress(d, t, "trials"), cancel=ctx.cancel)
    return result
