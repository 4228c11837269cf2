"""The imported-model ops (core/graph/ops_nn.py): layout, element-wise, dense_nd, reduce,
layer_norm and the streaming conv / pool / time_mean / delay, host JIT vs the interpreter on real
features, with resets in the middle of the stream; plus a real torch -> ONNX -> import -> compile."""

import numpy as np
import pytest
from compiler_helpers import check_parity, clip_hops, float32_rtol, real_clips, rel_err

from core.compiler.runtime import CompiledModel
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def feats(shared_data, devkit):
    f = Interpreter(devkit[0])
    x = np.concatenate([f.run(clip_hops(p, 512)) for p in real_clips(shared_data, words=3)])
    return (x - x.mean()) / x.std()  # both signs, unit scale


def _graph(*nodes: Node, size: int = 80) -> Graph:
    """input x (size,) -> reshape to (8, 10) as 'm' -> nodes... -> output of the last node."""
    ns = [Node("x", "input", [], {"size": size})]
    if size == 80:
        ns.append(Node("m", "reshape", ["x"], {"shape": [8, 10]}))
    ns += list(nodes)
    ns.append(Node("o", "output", [ns[-1].id]))
    return Graph(ns)


def _p(*shape, seed=0, scale=0.3):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize(
    "node",
    [
        Node("t", "transpose", ["m"], {"perm": [1, 0]}),
        Node("t", "slice", ["m"], {"axes": [0, 1], "starts": [1, 9], "ends": [7, 0], "steps": [2, -3]}),
        Node("t", "gather", ["m"], {"axis": 1, "indices": [9, 0, 3, 3]}),
        Node("t", "pad", ["m"], {"pads": [[1, 0], [2, 3]], "value": -1.5}),
        Node("t", "leaky_relu", ["m"], {"alpha": 0.1}),
        Node("t", "hard_sigmoid", ["m"], {"alpha": 0.3, "beta": 0.4}),
        Node("t", "clip", ["m"], {"min": -0.5, "max": 0.7}),
        Node("t", "clip", ["m"], {"min": 0.1}),
        Node("t", "affine", ["m"], {}, {"scale": _p(10, seed=1), "shift": _p(8, 1, seed=2)}),
        Node("t", "affine", ["m"], {}, {"scale": _p(8, 10, seed=1), "shift": _p(1, seed=2)}),
        Node("t", "dense_nd", ["m"], {}, {"weight": _p(5, 10, seed=3), "bias": _p(5, seed=4)}),
        Node("t", "dense_nd", ["m"], {}, {"weight": _p(37, 10, seed=3)}),
        Node("t", "reduce", ["m"], {"kind": "mean", "axes": [0]}),
        Node("t", "reduce", ["m"], {"kind": "sum", "axes": [1]}),
        Node("t", "reduce", ["m"], {"kind": "max", "axes": [0, 1]}),
        Node("t", "reduce", ["m"], {"kind": "min", "axes": [1]}),
        Node(
            "t",
            "layer_norm",
            ["m"],
            {"n_axes": 1, "epsilon": 1e-5},
            {"scale": _p(10, seed=5), "bias": _p(10, seed=6)},
        ),
        Node("t", "layer_norm", ["m"], {"n_axes": 2}, {"scale": _p(8, 10, seed=5)}),
        Node("t", "time_mean", ["m"], {"warmup": 2}),
        Node("t", "delay", ["m"], {"frames": 3}),
        Node("t", "delay", ["m"], {"frames": 1}),
        Node("t", "delay", ["m"], {"frames": 0}),
    ],
    ids=lambda n: f"{n.op}-{sorted(n.attrs.items())!s:.40}",
)
def test_frame_ops(feats, node):
    g = _graph(node)
    scale = None
    if node.op == "dense_nd":  # a dot product is compared at the scale of its terms
        ref_in = feats.reshape(-1, 8, 10)
        w = np.abs(node.params["weight"])
        scale = (np.abs(ref_in) @ w.T + np.abs(node.params.get("bias", 0.0))).reshape(len(feats), -1)
    check_parity(g, feats, floor=scale)


def test_concat(feats):
    g = _graph(
        Node("a", "unary", ["m"], {"fn": "tanh"}),
        Node("b", "slice", ["m"], {"axes": [1], "starts": [2], "ends": [5]}),
        Node("t", "concat", ["m", "b", "a"], {"axis": 1}),
    )
    check_parity(g, feats)
    g0 = _graph(Node("a", "unary", ["m"], {"fn": "abs"}), Node("t", "concat", ["a", "m"], {"axis": 0}))
    check_parity(g0, feats, rtol=0)


def _term_scale(g: Graph, x: np.ndarray) -> np.ndarray:
    """For a linear graph: the same graph with |weights| on |x|, i.e. the sum of |terms| of every
    output, the scale at which float32 sums (the reference's included) round."""
    ga = g.copy()
    for n in ga.nodes:
        n.params = {k: np.abs(v) for k, v in n.params.items()}
    return Interpreter(ga).run(np.abs(x))


def _conv(name, src, cin, cout, win=1, kt=1, kw=1, groups=1, seed=0, **attrs):
    a = {
        "in_channels": cin,
        "out_channels": cout,
        "in_width": win,
        "kernel_t": kt,
        "kernel_w": kw,
        "groups": groups,
        **attrs,
    }
    params = {
        "weight": _p(cout, cin // groups, kt, kw, seed=seed, scale=0.1),
        "bias": _p(cout, seed=seed + 1),
    }
    return Node(name, "conv", [src], a, params)


@pytest.mark.parametrize("case", ["temporal", "dilated_warmup", "width", "grouped", "stack"])
def test_conv(feats, case):
    if case == "temporal":  # conv1d over time: 80 channels in, kernel 3
        g = _graph(_conv("c", "x", 80, 24, kt=3), size=80)
    elif case == "dilated_warmup":
        g = _graph(_conv("c", "x", 80, 16, kt=4, dilation_t=2, warmup=2), size=80)
    elif case == "width":  # 2-D: (1 channel, 80 wide), 5x3 kernel, stride 2, padding, over time too
        g = _graph(
            Node("r", "reshape", ["x"], {"shape": [1, 80]}),
            _conv("c", "r", 1, 8, win=80, kt=3, kw=5, stride_w=2, pad_w=[2, 2], dilation_w=1),
            size=80,
        )
    elif case == "grouped":
        g = _graph(_conv("c", "m", 8, 4, win=10, kt=2, kw=3, groups=2, pad_w=[1, 1], dilation_w=2))
    else:  # conv -> relu -> conv -> time_mean -> dense: a small streaming CNN classifier
        g = _graph(
            _conv("c1", "x", 80, 32, kt=3),
            Node("r1", "unary", ["c1"], {"fn": "relu"}),
            _conv("c2", "r1", 32, 16, kt=3, dilation_t=2, seed=5),
            Node("m2", "time_mean", ["c2"]),
            Node("d", "dense", ["m2"], {}, {"weight": _p(12, 16, seed=7)}),
            Node("s", "softmax", ["d"]),
            size=80,
        )
    # conv outputs are sums: compared at the scale of their terms (the stack ends in probabilities)
    check_parity(g, feats, floor=_term_scale(g, feats) if case != "stack" else 0.0)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("include_pad", [False, True])
def test_pool(feats, kind, include_pad):
    g = _graph(
        Node(
            "p",
            "pool",
            ["m"],
            {
                "kind": kind,
                "in_channels": 8,
                "in_width": 10,
                "kernel_t": 3,
                "kernel_w": 3,
                "stride_w": 2,
                "pad_w": [1, 1],
                "warmup": 1,
                "count_include_pad": include_pad,
            },
        )
    )
    check_parity(g, feats)
    g1 = _graph(
        Node("p", "pool", ["x"], {"kind": kind, "in_channels": 80, "kernel_t": 4, "dilation_t": 2}), size=80
    )
    check_parity(g1, feats)


def test_state_resets_between_runs(feats):
    g = _graph(
        _conv("c", "x", 80, 8, kt=5),
        Node("t", "time_mean", ["c"]),
        Node("d", "delay", ["t"], {"frames": 2}),
        size=80,
    )
    m, ref = CompiledModel(g, "m"), Interpreter(g)
    for part in np.array_split(feats, 3):
        m.reset()
        ref.reset()
        scale = _term_scale(g, part)
        assert rel_err(m.run(part), ref.run(part), scale) <= float32_rtol(g, part, scale)


def test_torch_conv_model_through_onnx(tmp_path, feats):
    """A real PyTorch CNN exported with torch.onnx, imported, compiled: same as the interpreter."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from core.importers.onnx import load_onnx

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv1d(80, 32, 3, padding=0)
            self.c2 = torch.nn.Conv1d(32, 32, 3, dilation=2)
            self.fc = torch.nn.Linear(32, 12)

        def forward(self, x):  # (batch, time, 80)
            h = torch.relu(self.c1(x.transpose(1, 2)))
            h = torch.relu(self.c2(h))
            return torch.log_softmax(self.fc(h.transpose(1, 2)), dim=-1)

    path = tmp_path / "cnn.onnx"
    torch.onnx.export(
        Net().eval(),
        torch.zeros(1, 40, 80),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {1: "time"}},
        dynamo=False,
    )
    g = load_onnx(path)
    assert {"conv"} <= {n.op for n in g.nodes}
    check_parity(g, feats, floor=0.0)
