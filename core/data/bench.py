"""`kws bench --data`: dataset building speed beside librosa, and what each augmentation costs.

- End to end: files per second of `kws dataset` (read, featurize, cut rows) in 1 and N worker
  processes, beside librosa's load + melspectrogram over the same files and cores.
- Per augmentation: rows per CPU second of the builder's per-copy work (augment one copy, featurize
  it, cut its rows) with that step on every copy, in one process, clips already in memory - so
  the numbers compare the steps with each other, with featurizing alone and with librosa's
  featurizing rate. The room bank's one-off simulation is timed on its own line.
- The builder end to end with every step at once, as `kws dataset --augment-copies` runs it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SAMPLE = SHARED / "speech_commands_v0.01_sample"
NOISE = SHARED / "background_noise"

# name -> AugmentConfig fields that put the step on every copy
STEPS: dict[str, dict] = {
    "noise": {"noise_fraction": 1.0},
    "time shift": {"time_shift_ms": 100.0},
    "gain": {"gain_db": (-12.0, 6.0)},
    "speed": {"speed": (0.9, 1.1)},
    "pitch / VTLP": {"pitch_fraction": 1.0},
    "reverb": {"reverb_fraction": 1.0},
    "band limits": {"band_fraction": 1.0},
    "telephone band": {"telephone_fraction": 1.0},
    "peaking EQ": {"eq_fraction": 1.0},
    "babble": {"babble_fraction": 1.0},
}


def _librosa_features(paths) -> None:
    import librosa

    for p in paths:
        y, _ = librosa.load(p, sr=16000)
        np.log(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=512, n_mels=80, center=False) + 1)


def _librosa_rate(clips, jobs: int) -> tuple[float, float] | None:
    """(files per second, files per CPU second of this process: meaningful for jobs=1)."""
    try:
        import librosa  # noqa: F401
    except ImportError:
        return None
    _librosa_features([clips[0][0]])  # warm up (numba, caches)
    t0, c0 = time.perf_counter(), time.process_time()
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as ex:
            list(ex.map(_librosa_features, [[str(p) for p, _ in clips[i::jobs]] for i in range(jobs)]))
    else:
        _librosa_features([str(p) for p, _ in clips])
    return len(clips) / (time.perf_counter() - t0), len(clips) / max(time.process_time() - c0, 1e-9)


def _per_copy_rate(ctx, clips: list[np.ndarray], seed: int = 0) -> float:
    """Rows per CPU second of the builder's per-copy path (augment + featurize + rows), best of 3.

    CPU time of this process, so other processes on a busy machine do not count."""
    from core.data.dataset import _clip_rows, _one_blas_thread

    best = 0.0
    with _one_blas_thread():
        for _ in range(3):
            rng = np.random.default_rng(seed)
            rows = 0
            t0 = time.process_time()
            for i, x in enumerate(clips):
                rows += len(_clip_rows(ctx, x, rng, True, i)[0])
            best = max(best, rows / max(time.process_time() - t0, 1e-9))
    return best


def bench_dataset(folder: Path = SAMPLE, jobs: int = 2, rooms: int = 32) -> None:
    from dataclasses import replace

    from core.audio.wav import read_wav
    from core.data.augment import AugmentConfig, NoiseBank, RoomBank, SpeechPool
    from core.data.dataset import DatasetConfig, _Context, build_dataset, featurizer_info
    from core.evaluate.passrate import labelled_clips
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    if not folder.is_dir():
        print(f"(dataset bench skipped: {folder} not found)")
        return
    clips = labelled_clips(folder)
    cats = sorted({lab for _, lab in clips})
    entries = [(str(p), lab) for p, lab in clips]
    feat = build_featurizer(FeaturizerConfig())
    meta = featurizer_info(feat)
    sr = int(meta["sample_rate"])
    print(f"\n== dataset building: {len(clips)} wav files ({folder.name}), 80 mel, 512 window + hop")
    for j in sorted({1, jobs}):
        t0 = time.perf_counter()
        res = build_dataset(entries, cats, feat, meta, config=DatasetConfig(), jobs=j)
        dt = time.perf_counter() - t0
        print(f"  kwsgui kws dataset, {j} process{'es' if j > 1 else ''}   {len(clips) / dt:8.0f} files/s  "
              f"({dt:.2f} s, {len(res.dataset.labels)} rows)")
    lib = _librosa_rate(clips, jobs)
    if lib is None:
        print("  (librosa not installed: peer skipped)")
    else:
        print(f"  librosa load + melspectrogram, {jobs} proc.  {lib[0]:8.0f} files/s  peer")
        lib1 = _librosa_rate(clips, 1)[1]

    noise = NoiseBank.load(NOISE, sr) if NOISE.is_dir() else None
    every = {k: v for step in STEPS.values() for k, v in step.items()} | {"rooms": rooms}
    t0 = time.perf_counter()
    rooms = RoomBank.simulate(AugmentConfig(**every), sr, 0)
    print(f"\n  room bank: {len(rooms)} rooms simulated in {time.perf_counter() - t0:.1f} s (once per seed), "
          f"RT60 {min(rooms.rt60_measured_s):.2f}-{max(rooms.rt60_measured_s):.2f} s")
    audio = [read_wav(p, sr)[0] for p, _ in entries]
    pool = SpeechPool(tuple(p for p, _ in entries), sr)
    base = _Context(feat, sr, int(feat.input_size), 40, 40, AugmentConfig(), noise, 0, pool, rooms)
    print("  per augmented copy, 1 process, clips in memory (augment + featurize + rows), per CPU second:")
    clean = _per_copy_rate(base, audio)
    print(f"    {'featurize only':<34}{clean:8.0f} rows/s")
    if lib is not None:
        print(f"    {'librosa load + melspectrogram':<34}{lib1:8.0f} rows/s  (peer: 1 row per 1 s clip)")
    for name, fields in list(STEPS.items()) + [("all together", every)]:
        if "noise_fraction" in fields and noise is None:
            print(f"    {name:<34}   (skipped: {NOISE} not found)")
            continue
        rate = _per_copy_rate(replace(base, augment=AugmentConfig(**fields)), audio)
        print(f"    {name:<34}{rate:8.0f} rows/s  ({clean / rate:4.1f}x the time of featurizing)")
    if noise is not None:
        aug = AugmentConfig(copies=2, **every)
        t0 = time.perf_counter()
        res = build_dataset(entries, cats, feat, meta, config=DatasetConfig(), augment_config=aug, noise=noise,
                            jobs=jobs)
        dt = time.perf_counter() - t0
        print(f"  kws dataset, every step, 2 copies, {jobs} proc. {len(res.dataset) / dt:8.0f} rows/s  "
              f"({dt:.1f} s including the room bank, {len(res.dataset)} rows)")
