import math

import numpy as np
import pytest

from core.features.vad import VadConfig, VadTracker, cmessage_weights


def _load_vad_data(path):
    expected, frames = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        head, *pairs = line.split()
        expected.append(int(head.strip("()").split(",")[1]))
        v = np.zeros(40)
        for kv in pairs:
            i, x = kv.split(":")
            v[int(i)] = float(x)
        frames.append(v)
    return np.array(expected), np.array(frames)


def test_reproduces_ell_golden_vad_data_exactly(shared_data):
    expected, frames = _load_vad_data(shared_data / "ell_examples" / "VadData.txt")
    assert len(expected) == 40 and expected.min() == 0 and expected.max() == 1
    tracker = VadTracker(VadConfig(), n_features=40, frame_duration_s=0.032)
    _, _, signals = tracker.trace(frames)
    assert signals.tolist() == expected.tolist()
    # frame-by-frame streaming gives the same
    tracker.reset()
    assert [tracker.process(f) for f in frames] == expected.tolist()


def test_vad_node_in_graph_matches_tracker(shared_data):
    from core.graph.interpreter import Interpreter
    from core.graph.ir import chain

    expected, frames = _load_vad_data(shared_data / "ell_examples" / "VadData.txt")
    attrs = VadConfig().to_dict() | {"frame_duration": 0.032, "sample_rate": 8000}
    g = chain([("input", {"size": 40}, {}), ("vad", attrs, {}), ("output", {}, {})])
    rt = Interpreter(g)
    assert [int(rt.step(f)[0]) for f in frames] == expected.tolist()


def test_cmessage_weights_shape():
    w = cmessage_weights(80)
    assert w[0] == 0.0  # bin 0 (0 Hz) and anything at or below 60 Hz get no weight
    peak = w.argmax() * 4000 / 80
    assert 900 <= peak <= 1200  # C-message peaks near 1 kHz
    freqs = np.arange(80) * 4000 / 80
    assert np.all(w[freqs <= 60] == 0) and np.all(w[freqs > 60] > 0)


@pytest.mark.parametrize("name, value", [
    ("tau_up", -1.0), ("tau_down", 0.0), ("threshold_up", math.nan), ("level_threshold", -0.1),
    ("gain_att", math.inf),
])
def test_bad_parameters_name_the_parameter(name, value):
    with pytest.raises(ValueError, match=name):
        VadConfig(**{name: value})


def test_threshold_down_above_up_is_rejected():
    with pytest.raises(ValueError, match="threshold_down"):
        VadConfig(threshold_up=1.0, threshold_down=2.0)
