"""The spectrogram's column ring against a plain list-of-columns reference."""

from __future__ import annotations

import numpy as np
import pytest

from kwsgui.plots import ColumnRing, to_display


@pytest.mark.parametrize("capacity", [1, 7, 64])
def test_ring_keeps_the_newest_columns_in_order(capacity):
    rng = np.random.default_rng(1234)
    ring = ColumnRing(capacity, 5)
    history = np.zeros((0, 5), np.float32)
    for size in rng.integers(0, 3 * capacity + 2, size=60):
        cols = rng.standard_normal((size, 5)).astype(np.float32)
        ring.write(cols)
        history = np.concatenate([history, cols])
        newest = history[-capacity:] if len(history) else history
        got = ring.latest()
        assert got.base is not None  # a view into the ring, not a copy
        np.testing.assert_array_equal(got, newest)
        np.testing.assert_array_equal(ring.latest(3), history[-min(3, capacity):])
    assert ring.total == len(history)


def test_ring_rejects_empty_shapes():
    with pytest.raises(ValueError, match="capacity"):
        ColumnRing(0, 5)


def test_display_values_are_finite():
    x = np.array([[0.0, 1.0, np.nan, np.inf, -2.0]], np.float32)
    y = to_display(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert y[0, 0] == pytest.approx(-30.0) and y[0, 1] == pytest.approx(10 * np.log10(1.001), abs=1e-5)
