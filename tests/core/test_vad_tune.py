"""VAD scoring and tuning: the fast tracker equals VadTracker on real features, the reset-keyed
runner equals the graph with its VAD, and the tuner improves a deliberately bad start on a small
real stream, reproducibly, with progress and cancel."""

import threading

import numpy as np
import pytest
from test_vad_model import trained_like

from core.features.vad import VadConfig, VadTracker
from core.graph.interpreter import Interpreter
from core.vad.analysis import levels_of, reset_frames, signals_from_levels, trace_features
from core.vad.model import add_vad
from core.vad.params import VadParams
from core.vad.runner import ResetRunner
from core.vad.tune import prepare, tune_vad

BAD = VadParams().with_values(threshold_up=40.0, threshold_down=0.05)  # (almost) never on, never off


@pytest.fixture(scope="module")
def clips(shared_data):
    """20 real clips, two per word of ten words."""
    root = shared_data / "speech_commands_v0.01_sample"
    words = sorted(d for d in root.iterdir() if d.is_dir())[::3]
    return [(p, d.name) for d in words for p in sorted(d.glob("*.wav"))[:2]]


@pytest.fixture(scope="module")
def noise(shared_data):
    return sorted((shared_data / "background_noise").glob("*.wav"))


@pytest.fixture(scope="module")
def data(devkit, clips, noise):
    feat, clf, cats = devkit
    return prepare(feat, clf, cats, clips, sample_rate=16000, noise_files=noise, snrs=(20.0,), seed=1)


def test_fast_tracker_equals_vad_tracker_on_real_features(data, devkit):
    feats = data.streams[0].features
    for cfg in (VadConfig(), VadConfig(1, 0.1, 4, 0.1, 1, 1, 0.1), BAD.vad):
        levels, floors, signals = VadTracker(cfg, feats.shape[1], 0.032).trace(feats)
        fl = np.empty(len(feats))
        assert np.array_equal(levels_of(feats), levels)
        assert np.array_equal(signals_from_levels(levels, cfg, 0.032, fl), signals)
        assert np.array_equal(fl, floors)


@pytest.mark.parametrize("params", [VadParams(), VadParams().with_values(hold_frames=3),
                                    VadParams().with_values(reset_on="onset", hold_frames=1)])
@pytest.mark.parametrize("backend", ["interpreter", "compiled"])
def test_runner_equals_the_graph_with_its_vad(params, backend):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 0.05, (400, 8)).astype(np.float32)
    for start in range(10, 390, 37):
        x[start : start + int(rng.integers(4, 15))] += rng.uniform(0.5, 3.0)
    g = add_vad(trained_like(), params, 0.032, 16000)
    ref = Interpreter(g).run(x)
    tr = trace_features(x, params, 0.032)
    assert len(tr.resets) >= 5
    runner = ResetRunner(g, x, backend=backend)
    assert runner.backend == backend
    tol = 0 if backend == "interpreter" else 1e-5
    # windows in an order that makes the cache extend and reuse runs
    for lo, hi in [(50, 90), (0, 60), (200, 400), (0, 400), (120, 260)]:
        np.testing.assert_allclose(runner.window(tr.resets, lo, hi), ref[lo:hi], rtol=0, atol=tol + 1e-6)
    np.testing.assert_allclose(runner.run(tr.resets), ref, rtol=0, atol=tol + 1e-6)


def test_runner_for_graphs_with_other_state_resets_only_the_recurrent_state():
    g = add_vad(trained_like(), VadParams(), 0.032, 16000)
    # a delay line (state that a VAD does not reset) between the normalisation and the GRUs
    from core.graph.ir import Node

    i = next(k for k, n in enumerate(g.nodes) if n.id == "gru0")
    g.nodes.insert(i, Node("delay", "delay", ["norm"], {"frames": 2}))
    g.node("gru0").inputs[0] = "delay"
    g.validate()
    x = np.random.default_rng(5).uniform(0, 0.05, (120, 8)).astype(np.float32)
    x[30:40] += 3
    x[80:90] += 3
    runner = ResetRunner(g, x)
    assert not runner.cacheable
    resets = reset_frames(Interpreter(g).run_all(x)[g.by_op("vad")[0].id][:, 0])
    assert len(resets) >= 1
    np.testing.assert_allclose(runner.run(resets), Interpreter(g).run(x), rtol=0, atol=1e-6)


def test_tuner_improves_a_bad_start_reproducibly(data):
    seen = []
    res = tune_vad(data, BAD, trials=32, seed=3, progress=lambda k, n: seen.append((k, n)))
    assert seen[-1] == (32, 32) and len(res.trials) == 32
    start, best = res.start.score, res.best.score
    assert start.resets <= 2 and start.accuracy <= res.baselines["continuous"].accuracy + 0.1
    assert best.accuracy >= start.accuracy + 0.3, (start, best)
    assert best.accuracy >= res.baselines["reset"].accuracy - 0.15  # most of the gap
    assert res.best.params != BAD
    again = tune_vad(data, BAD, trials=32, seed=3)
    assert again.best.params == res.best.params and again.best.score == res.best.score


def test_tuner_can_pick_the_reset_rule(data):
    res = tune_vad(data, BAD, trials=24, seed=0, search_hold=True, search_reset_on=True)
    modes = {t.params.reset.reset_on for t in res.trials}
    holds = {t.params.reset.hold_frames for t in res.trials}
    assert modes == {"offset", "onset"} and len(holds) > 3
    assert res.best.score.accuracy > res.start.score.accuracy


def test_cancel_returns_the_best_so_far(data):
    stop = threading.Event()
    res = tune_vad(data, BAD, trials=50, seed=0, progress=lambda k, n: stop.set() if k == 3 else None,
                   cancel=stop)
    assert res.cancelled and len(res.trials) == 3


def test_segmentation_objective_without_classifier(devkit, clips, noise):
    feat, _, cats = devkit
    d = prepare(feat, None, cats, clips, sample_rate=16000, noise_files=noise, snrs=(20.0,), seed=1)
    assert d.runners is None and d.streams[0].words is not None
    res = tune_vad(d, BAD, trials=12, seed=0, objective="f1")
    assert res.start.score.accuracy is None
    assert res.best.score.f1 > res.start.score.f1 + 0.2
    with pytest.raises(ValueError, match="classifier"):
        tune_vad(d, BAD, trials=2, objective="accuracy")


def test_back_to_back_score_is_kws_evals_continuous_pass_rate(clips):
    """The tuner scores a VAD on the clips back to back by the rule and in the order `kws eval`
    plays a continuous list (shuffled, best frame among the frames background does not win), so
    what it maximises is what the user measures. The bundled model says background on silence:
    taking the most confident frame of all (background's, on a clip's silence) would score it
    near zero."""
    from core import models
    from core.evaluate.passrate import evaluate_clips, play_order
    from core.pipeline import KeywordSpotter
    from core.vad.model import model_vad, strip_vad
    from core.vad.tune import Scorer, TuneData

    feat, clf = models.load_model(models.DEFAULT_FEATURIZER), models.load_model(models.DEFAULT_CLASSIFIER)
    cats = models.load_categories(models.DEFAULT_CATEGORIES)
    bare = strip_vad(clf)
    full = prepare(feat, bare, cats, clips, sample_rate=16000, seed=5, back_to_back=True)
    b2b = TuneData([full.streams[-1]], cats, full.frame_duration_s, runners=[full.runners[-1]])
    scorer = Scorer(b2b)
    start, fd = model_vad(clf)
    order, _ = play_order(clips, continuous=True, seed=5)
    assert [lab for _, lab in order] == list(b2b.streams[0].labels) != [lab for _, lab in clips]
    for params in (start, start.with_values(hold_frames=4), BAD):
        want = evaluate_clips(KeywordSpotter(feat, add_vad(bare, params, fd, 16000)), cats, order, reset=False)
        assert scorer(params).correct == want.passed
    assert scorer(start).correct >= len(clips) // 2


def test_only_hold_keeps_the_parameters_and_picks_the_best_hangover(data):
    start = VadParams()
    res = tune_vad(data, start, only_hold=True)
    assert res.best.params.vad == start.vad and res.best.params.reset.reset_on == start.reset.reset_on
    tried = {t.params.reset.hold_frames: t.score.key() for t in res.trials}
    assert sorted(tried) == list(range(21))
    top = max(tried.values())
    assert res.best.params.reset.hold_frames == min(h for h, k in tried.items() if k == top)
