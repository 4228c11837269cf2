"""BC-ResNet (core/train/arch.py), the convolutional spotter: PyTorch -> ONNX -> our importer ->
interpreter and host JIT, streamed one frame per call, equals PyTorch's full-sequence output;
reset; both conv loop orders of the compiler; a few training steps learn."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from compiler_helpers import float32_rtol, rel_err
from torch import nn

import core.compiler.lower_temporal as lower_temporal
from core.compiler.runtime import CompiledModel
from core.data.dataset import Dataset
from core.graph import modelfile
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node
from core.train.arch import POOL_FRAMES, BCResNetSpotter
from core.train.config import TrainConfig
from core.train.export import export_onnx, to_graph
from core.train.trainer import Splits, Trainer

N_FEATURES, N_CLASSES, FRAMES = 20, 3, 80
CFG = TrainConfig(architecture="bcresnet", bc_channels=4, bc_blocks=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = BCResNetSpotter(N_FEATURES, N_CLASSES, CFG)
    with torch.no_grad():  # fresh BatchNorm is the identity: give it statistics, so folding is tested
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
        m.norm.mean.uniform_(-1, 1)
        m.norm.std.uniform_(0.5, 2)
    return m.eval()


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(1).standard_normal((FRAMES, N_FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("bcresnet") / "model.onnx"
    export_onnx(model, N_FEATURES, path)
    return path, to_graph(model, N_FEATURES, path)


@pytest.fixture(scope="module")
def compiled(exported):
    return CompiledModel(exported[1], "bcresnet")


def _torch_probs(model, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(frames)[None])[0].exp().numpy()  # (frames, classes)


def test_streams_frame_by_frame_like_pytorch(model, exported, compiled, frames):
    path, graph = exported
    assert model.receptive_field < FRAMES  # the stream runs past the first full window
    ops = {n.op for n in graph.nodes}
    assert "conv" in ops and not ops & {"time_mean", "delay"}  # causal: no latency, no running mean
    # the longest look back: the causal mean of the logits
    assert max(int(n.attrs["kernel_t"]) for n in graph.by_op("conv")) == POOL_FRAMES
    ref = _torch_probs(model, frames)
    rt = Interpreter(graph)
    stream = np.stack([rt.step(f) for f in frames])
    jit = np.stack([compiled.step(f) for f in frames])
    # PyTorch (full sequence, its own conv algorithms), the interpreter (float64 sums) and the JIT
    # (float32 sums in another order) are float32 evaluations of the same dot products. Backward
    # error analysis bounds each by the exact result with every weight perturbed by ~sqrt(fan_in) *
    # u (u = 2^-24); float32_rtol measures what such perturbations do to this model's output on
    # these frames (softmax included), with a margin of 8 (see compiler_helpers).
    tol = float32_rtol(graph, frames)
    assert rel_err(stream, ref) <= tol
    assert rel_err(jit, ref) <= tol
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_probs = np.exp(sess.run(None, {"features": frames[None]})[0][0])
    assert rel_err(onnx_probs, ref) <= tol


def test_reset_restarts_the_stream(exported, compiled, frames):
    graph = exported[1]
    first = Interpreter(graph).run(frames)
    rt = Interpreter(graph)
    rt.run(frames[::-1])  # other frames first: the state now holds them
    carried = rt.run(frames)
    assert rel_err(carried[:8], first[:8]) > 1e-3  # the history matters for the first frames...
    rt.reset()
    np.testing.assert_array_equal(rt.run(frames), first)  # ...and reset clears it
    compiled.reset()
    a = compiled.run(frames)
    compiled.run(frames[::-1])
    compiled.reset()
    np.testing.assert_array_equal(compiled.run(frames), a)  # the same code from the same zero state


@pytest.mark.parametrize("stride_w", [1, 2])
def test_both_conv_loop_orders_match_the_interpreter(monkeypatch, stride_w):
    """The compiler picks 'direct' or 'gathered' per conv by cost; force each on one awkward conv
    (groups, time dilation, width dilation, uneven width padding, warm-up) and compare."""
    rng = np.random.default_rng(3)
    attrs = {"in_channels": 4, "out_channels": 6, "in_width": 12, "kernel_t": 3, "dilation_t": 2, "kernel_w": 3,
             "dilation_w": 2, "stride_w": stride_w, "pad_w": [2, 1], "groups": 2, "warmup": 1}
    conv = Node("c", "conv", ["x"], attrs, {"weight": rng.standard_normal((6, 2, 3, 3)).astype(np.float32),
                                            "bias": rng.standard_normal(6).astype(np.float32)})
    g = Graph([Node("x", "input", [], {"size": 48}), conv, Node("o", "output", ["c"])])
    x = rng.standard_normal((30, 48)).astype(np.float32)
    ref = Interpreter(g).run(x)
    # a conv output is a sum of 18 products: compare at the scale of the sum of |terms|
    ga = g.copy()
    ga.node("c").params = {k: np.abs(v) for k, v in conv.params.items()}
    scale = Interpreter(ga).run(np.abs(x))
    for direct in (True, False):
        monkeypatch.setattr(lower_temporal, "_direct", lambda w, groups, geo, d=direct: d)
        got = CompiledModel(g, f"conv_{int(direct)}").run(x)
        assert rel_err(got, ref, scale) <= float32_rtol(g, x, scale)


def test_bcresnet_uses_both_loop_orders(exported):
    picks = {lower_temporal._direct(np.asarray(n.params["weight"]), int(n.attrs.get("groups", 1)),
                                    lower_temporal._geometry(n)) for n in exported[1].by_op("conv")}
    assert picks == {True, False}  # depthwise convs over frequency go direct, the stem gathered


def _rows(n: int, seed: int) -> Dataset:
    """Class 1: a bump moving up in frequency over time; class 2: moving down; class 0: noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    x = rng.standard_normal((n, 12, N_FEATURES)).astype(np.float32) * 0.3
    for i in np.flatnonzero(y):
        for t in range(12):
            f = t if y[i] == 1 else N_FEATURES - 1 - t
            x[i, t, f : f + 3] += 2.0
    return Dataset(x, y.astype(np.int64), ("background", "up", "down"), {"sample_rate": 16000, "hop_length": 512},
                   {"window_frames": 12})


def test_training_reduces_the_loss(tmp_path):
    cfg = TrainConfig.from_dict(CFG.to_dict() | dict(epochs=3, batch_size=16, optimizer="adam", learning_rate=1e-2,
                                                      normalize=True))
    tr = Trainer(cfg, Splits(_rows(128, 0), _rows(48, 1), None), tmp_path)
    log = tr.fit().log
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]
    g = modelfile.load(tr.finish().outputs["model"])  # what `kws train` writes: the streaming graph
    assert g.categories == ["background", "up", "down"]
    assert g.metadata["training"]["config"]["architecture"] == "bcresnet"
