"""The live spectrogram against the offline featurizer, within the featurizer's float32 tolerance.

The image shows 10 log10(feature + DISPLAY_FLOOR): near the floor a feature error e becomes
4.3 e / (feature + floor) dB, so a fixed tolerance on the image is wrong for quiet bins. The image
is turned back into features (exact to ~1e-7 relative: float32 rounding of the dB values) and
compared with tests/core/compiler_helpers.float32_rtol, the one float32 error model of the suite
(the streamed, compiled featurizer vs the interpreter's one batch: FFT error relative to each
frame's spectrum norm, mel dot products), absolutely below 1 as tests/core/test_compiler_rnn.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from compiler_helpers import float32_rtol, rel_err  # noqa: E402

from core.features.featurizer import featurize, hops  # noqa: E402
from kwsgui.plots import DISPLAY_FLOOR  # noqa: E402


def assert_display_matches(img: np.ndarray, featurizer, samples: np.ndarray) -> None:
    blocks = hops(samples, featurizer.input_size)
    ref = featurize(featurizer, samples)[-len(img):]
    got = 10.0 ** (np.asarray(img, np.float64) / 10.0) - DISPLAY_FLOOR
    tol = float32_rtol(featurizer, blocks, 1.0)
    err = rel_err(got, ref, 1.0)
    assert err <= tol, f"spectrogram differs from the featurizer by {err:.3g} (float32 tolerance {tol:.3g})"
