"""A picture of what the VAD does over a clip: features (spectrogram), level with noise floor
and thresholds, and the 0/1 signal with the resets. matplotlib's Agg canvas directly (no pyplot,
no global backend switch, no Qt)."""

from __future__ import annotations

import os

import numpy as np

from core.fsutil import atomic_path
from core.vad.analysis import VadTrace


def plot_trace(features: np.ndarray, trace: VadTrace, path: str | os.PathLike, title: str = "") -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fd = trace.frame_duration_s
    n = len(trace.levels)
    t = np.arange(n) * fd
    end = n * fd
    fig = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_s, ax_l, ax_v = fig.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1])
    feats = np.asarray(features, np.float32)
    ax_s.imshow(feats.T, origin="lower", aspect="auto", extent=(0, end, 0, feats.shape[1]), cmap="magma",
                interpolation="nearest")
    ax_s.set_ylabel("feature bin")
    ax_s.set_title(title or "VAD")
    for a, b in trace.segments:
        ax_s.axvspan(a, b, color="cyan", alpha=0.12, lw=0)
    c = trace.params.vad
    tiny = 1e-6
    ax_l.semilogy(t, np.maximum(trace.levels, tiny), lw=1.2, label="level", drawstyle="steps-post")
    ax_l.semilogy(t, np.maximum(trace.floors, tiny), lw=1.2, label="noise floor", drawstyle="steps-post")
    ax_l.semilogy(t, np.maximum(c.threshold_up * trace.floors, tiny), "--", lw=0.8,
                  label=f"on: {c.threshold_up:.3g} x floor", drawstyle="steps-post")
    ax_l.semilogy(t, np.maximum(c.threshold_down * trace.floors, tiny), ":", lw=0.8,
                  label=f"off: {c.threshold_down:.3g} x floor", drawstyle="steps-post")
    ax_l.axhline(max(c.level_threshold, tiny), color="grey", lw=0.8, label="level threshold")
    ax_l.set_ylabel("level")
    ax_l.legend(loc="upper right", fontsize=7, ncol=5)
    ax_v.step(t, trace.signals, where="post", lw=1.5, label="voice")
    if not trace.params.reset.is_ell:
        ax_v.step(t, trace.trigger * 0.8, where="post", lw=1, label="trigger (x0.8)")
    for r in trace.resets:
        ax_v.axvline((r + 1) * fd, color="red", lw=0.8)
    ax_v.set_ylim(-0.1, 1.2)
    ax_v.set_yticks([0, 1])
    ax_v.set_ylabel("signal")
    ax_v.set_xlabel(f"time (s); red: recurrent state reset ({len(trace.resets)})")
    ax_v.set_xlim(0, max(end, fd))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
