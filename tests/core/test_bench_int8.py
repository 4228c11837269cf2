"""kws bench's int8 line: the classifier quantized and compiled is timed per frame beside the
float compiled classifier, and the weight bytes of both are printed (int8 weights: 1 byte per
weight plus a float32 scale per output row, biases stay float32)."""

import numpy as np

from core.commands import bench
from core.graph.ir import chain
from core.quantize import weight_bytes


def test_int8_row_and_weight_bytes(capsys):
    rng = np.random.default_rng(0)
    h, k = 16, 8
    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    zeros = np.zeros(3 * h, np.float32)
    clf = chain([("input", {"size": k}, {}),
                 ("gru", {"hidden_size": h}, {"w_ih": w(3 * h, k), "w_hh": w(3 * h, h), "b_ih": zeros, "b_hh": zeros}),
                 ("dense", {}, {"weight": w(4, h), "bias": np.zeros(4, np.float32)}),
                 ("softmax", {}, {}), ("output", {}, {})], {"kind": "classifier"})
    feats = rng.normal(0, 1, (50, k)).astype(np.float32)

    t = bench.Table({"classifier": 1}, {"classifier": weight_bytes(clf)})
    t.rows["compiled, one native call per frame"] = {"classifier": 1.0}
    bench._int8(t, clf, feats, 20)
    assert t.rows["compiled int8, one native call per frame"]["classifier"] > 0
    # float: (48x8 + 48x16 + 4x16) weights + (48 + 48 + 4) biases, 4 bytes each; int8: 1 byte per
    # weight, a float32 scale per row of w_ih, w_hh and dense (48 + 48 + 4), float32 biases
    n = 48 * 8 + 48 * 16 + 4 * 16
    fb, qb = 4 * (n + 100), n + 4 * 100 + 4 * 100
    out = capsys.readouterr().out
    assert f"weights {qb:,} bytes vs {fb:,} bytes" in out, out
