"""VAD reset options (reset_on / hold_frames): the trigger rule, the GRU resets it causes, and the
interpreter and compiled code emitting identical 0/1 sequences on real features."""

import numpy as np
import pytest

from core.features.vad import ResetConfig, VadConfig, reset_trigger
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node


def _loop_reference(signals, reset_on, hold):
    """Plain restatement: held = voice now or within the last `hold` frames."""
    out, last_on = [], None
    for t, s in enumerate(signals):
        if s:
            last_on = t
        held = last_on is not None and t - last_on <= hold
        out.append(int(held) if reset_on == "offset" else 1 - int(held))
    return out


@pytest.mark.parametrize("reset_on", ["offset", "onset"])
@pytest.mark.parametrize("hold", [0, 1, 3])
def test_trigger_rule_and_split_calls(reset_on, hold):
    sig = np.random.default_rng(hold).integers(0, 2, 200) * np.random.default_rng(9).integers(0, 2, 200)
    rc = ResetConfig(reset_on, hold)
    whole, _ = reset_trigger(sig, rc)
    assert whole.tolist() == _loop_reference(sig, reset_on, hold)
    a, hang = reset_trigger(sig[:77], rc)
    b, _ = reset_trigger(sig[77:], rc, hang)
    assert np.concatenate([a, b]).tolist() == whole.tolist()


@pytest.mark.parametrize("bad", [dict(reset_on="end"), dict(hold_frames=-1), dict(hold_frames=1.5),
                                 dict(hold_frames=True)])
def test_bad_reset_options_name_the_option(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ResetConfig(**bad)


def _graph(attrs, with_gru=False):
    nodes = [Node("x", "input", [], {"size": 40}), Node("v", "vad", ["x"], attrs)]
    if with_gru:
        rng = np.random.default_rng(0)
        p = {k: rng.uniform(-0.3, 0.3, s).astype(np.float32) for k, s in
             (("w_ih", (12, 40)), ("w_hh", (12, 4)), ("b_ih", (12,)), ("b_hh", (12,)))}
        nodes.append(Node("g", "gru", ["x", "v"], {"hidden_size": 4}, p))
        nodes.append(Node("o", "output", ["g"]))
    else:
        nodes.append(Node("o", "output", ["v"]))
    return Graph(nodes)


def _frames(n=300, seed=0):
    """Bursts of 'speech' (large values) between quiet stretches, 40 features."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.02, (n, 40))
    t = 0
    while t < n:
        t += int(rng.integers(5, 25))
        length = int(rng.integers(3, 15))
        x[t : t + length] += rng.uniform(0.5, 2.0)
        t += length
    return x.astype(np.float32)


@pytest.mark.parametrize("reset_on, hold", [("offset", 0), ("offset", 4), ("onset", 0), ("onset", 2)])
def test_gru_resets_where_the_trigger_falls(reset_on, hold):
    x = _frames()
    attrs = VadConfig().to_dict() | {"frame_duration": 0.032, "sample_rate": 8000.0, "reset_on": reset_on,
                                     "hold_frames": hold}
    g = _graph(attrs, with_gru=True)
    vals = Interpreter(g).run_all(x)
    trig = vals["v"][:, 0]
    fired = np.nonzero((trig[:-1] == 1) & (trig[1:] == 0))[0] + 1
    assert len(fired) >= 5
    # reference: the same GRU without trigger, restarted from zero state after each fired frame
    plain = Graph([n for n in g.nodes if n.id != "v"])
    plain.node("g").inputs = ["x"]
    ref, start = [], 0
    for end in [*fired + 1, len(x)]:
        ref.append(Interpreter(plain).run(x[start:end]))
        start = end
    np.testing.assert_allclose(vals["o"], np.concatenate(ref), rtol=0, atol=1e-6)


@pytest.mark.parametrize("reset_on, hold", [("offset", 0), ("offset", 5), ("onset", 0), ("onset", 3)])
def test_compiled_trigger_is_identical(reset_on, hold):
    pytest.importorskip("llvmlite")
    from core.compiler.runtime import CompiledModel

    x = _frames(seed=1)
    attrs = VadConfig().to_dict() | {"frame_duration": 0.032, "sample_rate": 8000.0, "reset_on": reset_on,
                                     "hold_frames": hold}
    g = _graph(attrs)
    ref = Interpreter(g).run(x)
    m = CompiledModel(g, "vadtrig")
    assert np.array_equal(m.run(x[:100]), ref[:100]) and np.array_equal(m.run(x[100:]), ref[100:])
    m.reset()
    assert np.array_equal(np.array([m.step(f) for f in x]), ref)
