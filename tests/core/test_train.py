"""Training on a tiny synthetic dataset: learning, exact resume, exports, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.data.dataset import Dataset, save_dataset
from core.evaluate.passrate import decide
from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.train.config import TrainConfig
from core.train.trainer import Trainer, load_splits, lr_at

ROOT = Path(__file__).resolve().parents[2]
CATS = ("background", "up", "down")


def _make(n, seed):
    """Class 1 ramps feature 0 up over time, class 2 ramps it down, class 0 is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 10, 8)).astype(np.float32) * 0.3
    ramp = np.linspace(-1, 1, 10, dtype=np.float32)
    x[y == 1, :, 0] += ramp * 2
    x[y == 2, :, 0] -= ramp * 2
    meta = {"featurizer": {"sample_rate": 16000, "hop_length": 512}, "sample_rate": 16000, "hop_length": 512}
    return Dataset(x + 0.5, y.astype(np.int64), CATS, meta, {"window_frames": 10})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds")
    for name, n, seed in (("training", 240, 0), ("validation", 60, 1), ("testing", 60, 2)):
        save_dataset(d / f"{name}.npz", _make(n, seed))
    return d


FAST = dict(epochs=6, batch_size=32, hidden_size=16, num_layers=1, optimizer="adam", learning_rate=1e-2)


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_learns_and_exports_match_pytorch(data_dir, tmp_path, arch):
    cfg = TrainConfig(architecture=arch, normalize=True, num_layers=2 if arch == "gru" else 1,
                      **{k: v for k, v in FAST.items() if k != "num_layers"})
    tr = Trainer(cfg, load_splits(data_dir), tmp_path)
    res = tr.fit()
    res = tr.finish()
    assert res.log[-1]["val_accuracy"] > 0.8 and res.test_accuracy > 0.8
    assert np.array(res.confusion).sum() == 60
    model = tr.model.eval().cpu()
    x = _make(4, 9).features  # (4, 10, 8)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()  # log-probs per frame
    # ONNX (RNN kept as an ONNX op) in onnxruntime
    onnx_model = __import__("onnx").load(res.outputs["onnx"])
    assert {"GRU" if arch == "gru" else "LSTM"} <= {n.op_type for n in onnx_model.graph.node}
    sess = ort.InferenceSession(res.outputs["onnx"], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"features": x})[0], ref, atol=1e-5)
    # our model file, one frame per call, probabilities
    g = modelfile.load(res.outputs["model"])
    assert g.categories == list(CATS) and g.metadata["training"]["config"]["architecture"] == arch
    for row in range(len(x)):
        rt = Interpreter(g)
        stream = np.stack([rt.step(f) for f in x[row]])
        np.testing.assert_allclose(stream, np.exp(ref[row]), atol=1e-5)
    results = json.loads(Path(res.outputs["results"]).read_text())
    assert len(results["log"]) == cfg.epochs and results["test_accuracy"] == res.test_accuracy


def test_checkpoint_and_resume_continue_the_same_run(data_dir, tmp_path):
    cfg = TrainConfig(epochs=3, dropout=0.2, num_layers=2, **{k: v for k, v in FAST.items()
                                                              if k not in ("epochs", "num_layers")})
    straight = Trainer(cfg, load_splits(data_dir), tmp_path / "a")
    straight.fit()
    # the same run, stopped after epoch 1 (as if Ctrl-C) and resumed
    first = Trainer(TrainConfig(**{**cfg.to_dict(), "epochs": 3}), load_splits(data_dir), tmp_path / "b")
    first.run_epoch_limit = 1
    import threading

    stop = threading.Event()
    first.on_epoch = lambda e: stop.set()
    first.stop = stop
    r1 = first.fit()
    assert r1.interrupted and len(r1.log) == 1
    resumed = Trainer(cfg, load_splits(data_dir), tmp_path / "b")
    resumed.resume()
    assert resumed.start_epoch == 1
    r2 = resumed.fit()
    assert [e["epoch"] for e in r2.log] == [1, 2, 3]
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_schedules():
    cfg = TrainConfig(epochs=10, learning_rate=1.0, lr_min=0.0, scheduler="cosine")
    assert lr_at(cfg, 0, 0) == pytest.approx(1.0) and lr_at(cfg, 9, 1.0) == pytest.approx(0.0)
    tri = TrainConfig(epochs=10, learning_rate=1.0, lr_min=0.0, scheduler="triangle")
    assert lr_at(tri, 5, 0) == pytest.approx(1.0) and lr_at(tri, 0, 0) == pytest.approx(0.0)
    step = TrainConfig(epochs=10, learning_rate=1.0, scheduler="step", lr_step_size=3, lr_gamma=0.5)
    assert [lr_at(step, e, 0) for e in (0, 3, 6)] == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("bad", [dict(architecture="transformer"), dict(num_layers=4), dict(optimizer="lbfgs"),
                                 dict(learning_rate=0), dict(dropout=1.0)])
def test_bad_options_name_the_option(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_ddp_two_processes_on_cpu(data_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    out = subprocess.run([*torchrun, "-m", "core", "train", "--dataset", data_dir, "-o", tmp_path,
                          "--epochs", "1", "--hidden-size", "8", "--num-layers", "1", "--batch-size", "16"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, "\n".join(ln for ln in out.stderr.splitlines() if "Warning" not in ln)[-4000:]
    assert out.stdout.count("epoch   1/1") == 1, out.stdout  # rank 0 reports
    res = json.loads((tmp_path / "train_results.json").read_text())
    assert len(res["log"]) == 1 and res["log"][0]["rows_per_s"] > 0
    assert modelfile.load(tmp_path / "model.kwm").categories == list(CATS)


def test_train_command_end_to_end(data_dir, tmp_path):
    out = subprocess.run([sys.executable, "-m", "core", "train", "--dataset", data_dir, "-o", tmp_path,
                          "--epochs", "2", "--hidden-size", "8", "--architecture", "lstm", "--num-layers", "1",
                          "--scheduler", "onecycle", "--optimizer", "adamw", "--spec-augment"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Testing accuracy" in out.stdout
    for f in ("model.kwm", "model.pt", "model.onnx", "train_results.json", "checkpoint.pt", "categories.txt"):
        assert (tmp_path / f).is_file(), f
    again = subprocess.run([sys.executable, "-m", "core", "train", "--dataset", data_dir, "-o", tmp_path,
                            "--epochs", "3", "--hidden-size", "8", "--architecture", "lstm", "--num-layers", "1",
                            "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resuming after epoch 2" in again.stdout, again.stderr
    assert "epoch   3/3" in again.stdout and "epoch   1/3" not in again.stdout


def test_context_rows_play_other_rows_first_and_the_teacher_labels_the_row_alone(data_dir, tmp_path):
    """--context-rows: the student hears a tail of up to N other rows before each row (state carried);
    the teacher's soft target is taken on the row alone, so context never changes what it says."""
    cfg = TrainConfig(epochs=3, context_prob=1.0, context_rows=3, **{k: v for k, v in FAST.items() if k != "epochs"})
    tr = Trainer(cfg, load_splits(data_dir), tmp_path)
    frames = tr.x.shape[1]
    teacher_rows, student_rows = [], []

    class Recorder:  # records what the teacher is asked to label; says "uniform"
        covered = np.ones(len(CATS), bool)

        def label_rows(self, rows):
            teacher_rows.append(rows.shape)
            return np.full((len(rows), len(CATS)), 1 / len(CATS), np.float32)

    tr.teacher, tr.covered, tr.bg_index = Recorder(), torch.ones(len(CATS), dtype=torch.bool), 0
    tr.net.register_forward_pre_hook(lambda m, args: student_rows.append(args[0].shape) if m.training else None)
    tr.fit()
    assert teacher_rows and all(s[1] == frames for s in teacher_rows)
    lengths = {s[1] for s in student_rows}
    assert all(frames < n <= 4 * frames for n in lengths) and max(lengths) > 2 * frames


def _bump_rows(n, seed, frames=16):
    """A short 'word' at frames 3-5 (class 1: feature 0 up, class 2: feature 1 up), then silence."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, frames, 8)).astype(np.float32) * 0.2
    x[y == 1, 3:6, 0] += 2.0
    x[y == 2, 3:6, 1] += 2.0
    meta = {"featurizer": {"sample_rate": 16000, "hop_length": 512}, "sample_rate": 16000, "hop_length": 512}
    return Dataset(x, y.astype(np.int64), CATS, meta, {"window_frames": frames})


def _suffix_rows(n, seed, frames=16):
    """Class 2 (feature 1 up at frames 3-5) ends with what class 1 is (feature 0 up at 6-8), as
    'happy' ends in a sound like 'eight'."""
    d = _bump_rows(n, seed, frames)
    d.features[d.labels == 2, 6:9, 0] += 2.0
    return d


def test_peak_targets_keep_other_words_quiet_inside_a_word(tmp_path):
    """target_frame=peak: the frames of a word's window may say the word or background, nothing
    else, so the end of a word that sounds like another word (class 2 ends as class 1 sounds)
    does not fire the other; the other is still found on its own."""
    for name, n, seed in (("training", 480, 0), ("validation", 60, 1), ("testing", 90, 2)):
        save_dataset(tmp_path / f"{name}.npz", _suffix_rows(n, seed))
    test = _suffix_rows(90, 2)
    cfg = TrainConfig(target_frame="peak", hold_frames=3, **{**FAST, "epochs": 10, "hidden_size": 24})
    tr = Trainer(cfg, load_splits(tmp_path), tmp_path / "peak")
    tr.fit()
    with torch.no_grad():
        p = tr.model.eval()(torch.from_numpy(test.features)).exp().numpy()
    fires_1 = p[:, :, 1].max(axis=1)  # a detector of class 1: its most confident frame
    assert fires_1[test.labels == 1].mean() > 0.8
    assert fires_1[test.labels == 2].mean() < 0.3, fires_1[test.labels == 2].mean()


def _clatter_rows(n, seed, frames=16, like_the_word=0):
    """Classes background, unknown, word: the word is feature 0 up at frames 3-5, unknown rows are
    feature 1's bump; rows of class `like_the_word` (background: a clatter of dishes that starts
    like 'happy'; unknown: 'happy' that starts like 'cat') start as the word does and go on
    (feature 0 up at 3-5, then feature 2 at 9-11)."""
    d = _bump_rows(n, seed, frames)
    y = d.labels.copy()
    word, unknown = y == 1, y == 2
    d.labels[word], d.labels[unknown] = 2, 1
    like = d.labels == like_the_word
    d.features[like, 3:6, 0] += 2.0
    d.features[like, 9:12, 2] += 2.0
    return Dataset(d.features, d.labels, ("background", "unknown", "word"), d.featurizer, d.meta)


def test_quiet_background_keeps_a_detector_quiet_in_noise(tmp_path):
    """target_frame=last learns a row's label at its last frame only: a background row that starts
    like the word fires the word half-way (a streaming detector fires there). quiet_background:
    every frame of a background row learns 'no word', so the word fires on the word alone."""
    for name, n, seed in (("training", 480, 0), ("validation", 60, 1), ("testing", 90, 2)):
        save_dataset(tmp_path / f"{name}.npz", _clatter_rows(n, seed))
    test = _clatter_rows(90, 2)
    fires = {}
    for quiet in (False, True):
        cfg = TrainConfig(quiet_background=quiet, **{**FAST, "epochs": 10, "hidden_size": 24})
        tr = Trainer(cfg, load_splits(tmp_path), tmp_path / str(quiet))
        tr.fit()
        with torch.no_grad():
            p = tr.model.eval()(torch.from_numpy(test.features)).exp().numpy()
        assert p[test.labels == 2, -1, 2].mean() > 0.8  # the word still ends its rows
        fires[quiet] = float(p[test.labels == 0, :, 2].max(axis=1).mean())  # best frame in background rows
    assert fires[False] > 0.5 and fires[True] < 0.2, fires


def test_quiet_unknown_keeps_a_word_that_starts_like_the_keyword_quiet(tmp_path):
    """Last-frame targets teach an unknown row 'unknown' at its end only: a word that starts like the
    keyword fires it half-way. quiet_unknown: its likeliest frame learns 'no word' (max-pooling)."""
    for name, n, seed in (("training", 480, 0), ("validation", 60, 1), ("testing", 90, 2)):
        save_dataset(tmp_path / f"{name}.npz", _clatter_rows(n, seed, like_the_word=1))
    test = _clatter_rows(90, 2, like_the_word=1)
    fires = {}
    for quiet in (False, True):
        cfg = TrainConfig(quiet_unknown=float(quiet), **{**FAST, "epochs": 10, "hidden_size": 24})
        tr = Trainer(cfg, load_splits(tmp_path), tmp_path / str(quiet))
        tr.fit()
        with torch.no_grad():
            p = tr.model.eval()(torch.from_numpy(test.features)).exp().numpy()
        assert p[test.labels == 2, -1, 2].mean() > 0.8  # the word still ends its rows
        assert p[test.labels == 1, -1, 1].mean() > 0.8  # and the other word its own
        fires[quiet] = float(p[test.labels == 1, :, 2].max(axis=1).mean())  # best frame in unknown rows
    assert fires[False] > 0.3 and fires[True] < 0.1, fires  # measured 0.59 and 0.003


def test_peak_targets_fire_on_the_word_and_let_go(tmp_path):
    """target_frame=peak: the word is learnt where the model is surest of it and suppressed from
    hold_frames later, so it does not last to the end of the row (and into the next one in a
    stream); the last-frame recipe holds it to the row's end. Both find the word (best frame)."""
    for name, n, seed in (("training", 480, 0), ("validation", 60, 1), ("testing", 90, 2)):
        save_dataset(tmp_path / f"{name}.npz", _bump_rows(n, seed))
    test = _bump_rows(90, 2)
    spoken = test.labels > 0
    x = torch.from_numpy(test.features)
    end_prob, best = {}, {}
    for frame in ("last", "peak"):
        cfg = TrainConfig(target_frame=frame, hold_frames=3, **{**FAST, "epochs": 10, "hidden_size": 24})
        tr = Trainer(cfg, load_splits(tmp_path), tmp_path / frame)
        tr.fit()
        model = tr.model.eval()
        with torch.no_grad():
            p = model(x).exp().numpy()  # (rows, frames, classes)
        rows = np.flatnonzero(spoken)
        end_prob[frame] = float(p[rows, -1, test.labels[rows]].mean())
        best[frame] = float(p[rows, :, test.labels[rows]].max(axis=1).mean())
        named = [decide(r, list(CATS))[0] == CATS[y] for r, y in zip(p, test.labels)]
        assert np.mean(named) > 0.85, frame  # the best frame (kws eval's decision) names the row's class
    assert end_prob["last"] > 0.8 and best["peak"] > 0.8
    assert end_prob["peak"] < 0.3, end_prob
