"""The fast matvec kernels and the machine-floor tools (core.compiler.kernels, lower_q8, roofline).

- float: one register tile of outputs per pass over the weights; each output's sum runs over k in
  the same order whatever the tile width, so code lowered for 4-, 8- and 16-float vectors gives
  the same bits on one machine.
- int8 with AVX-512 VNNI: the 16 x 4 byte layout and the +128 offset with its row-sum correction
  give exactly the integer dot products W @ q (numpy emulation, any machine); the code is chosen
  by the target's features; on a VNNI host it matches the plain loop bit for bit.
- int8 with AVX2 (no VNNI): vpmaddubsw(|w|, sign(w) q) never saturates (numpy emulation of the
  instructions on the extreme values), the code is chosen from the target's features (an x86-64-v3
  cpu implies AVX2), and on an AVX2 host it equals the plain loop and the interpreter bit for bit.
- roofline: cache sizes from a sysfs-like folder, where bytes live, the floor formula, and the two
  measuring kernels compute what they claim (exact sums).
Timings are never asserted (they live in `kws bench`)."""

from __future__ import annotations

import numpy as np
import pytest

from core.commands.bench import ell_recipe
from core.compiler import roofline
from core.compiler.build import assembly, host_features, host_triple
from core.compiler.lower import lower
from core.compiler.lower_q8 import padded_q8, vnni_layout
from core.compiler.runtime import CompiledModel
from core.compiler.targets import Target
from core.graph.interpreter import Interpreter
from core.graph.ir import chain
from core.quantize import calibrate, quantize_graph


@pytest.fixture(scope="module")
def recipe():
    feat, clf = ell_recipe()
    rng = np.random.default_rng(1)
    feats = Interpreter(feat).run((rng.standard_normal((60, feat.input_size)) * 0.1).astype(np.float32))
    return clf, feats


def _host_variant(features: str) -> Target:
    return Target(host_triple(), "generic", features, 3, "variant")


def test_float_tiles_give_the_same_bits_at_every_width(recipe):
    clf, feats = recipe
    ref = CompiledModel(clf, "kt_host").run(feats)  # this machine's width
    for feats_str in ("+sse2", "+avx2,+fma"):  # 4- and 8-float vectors: tiles of 32 and 64 outputs
        other = CompiledModel(clf, "kt_var", options={"target": _host_variant(feats_str)})
        np.testing.assert_array_equal(other.run(feats), ref)


def test_vnni_layout_gives_the_exact_integer_dot_products():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (48, 75)).astype(np.int8)
    q = rng.integers(-127, 128, 75).astype(np.int64)
    wp, kp = padded_q8(w)
    w4, corr = vnni_layout(wp, kp)
    u = np.zeros(kp, np.int64)
    u[:75] = q + 128  # the bytes vpdpbusd reads: q + 128, padding 0 (its weights are 0)
    blocks = w4.reshape(wp.shape[0] // 16, kp // 4, 16, 4).astype(np.int64)
    acc = corr.reshape(-1, 16) + np.einsum("tgrc,gc->tr", blocks, u.reshape(kp // 4, 4))
    np.testing.assert_array_equal(acc.reshape(-1)[:48], w.astype(np.int64) @ q)


def _q8_dense(recipe):
    clf, feats = recipe
    return quantize_graph(clf, calibrate(clf, [feats])), feats


def test_vnni_code_is_chosen_by_the_target(recipe):
    q, _ = _q8_dense(recipe)
    cpu_only = Target("x86_64-unknown-linux-gnu", "sapphirerapids", "", 3, "spr")
    without = Target("x86_64-unknown-linux-gnu", "znver3", "", 3, "zen3")
    vnni = Target("x86_64-unknown-linux-gnu", "sapphirerapids", "+avx512f,+avx512bw,+avx512vnni", 3, "spr")
    assert "vpdpbusd" in assembly(lower(q, "m", options={"target": vnni}), vnni)
    for t in (cpu_only, without):  # VNNI is chosen from the features string only: the plain loop
        assert "vpdpbusd" not in assembly(lower(q, "m", options={"target": t}), t)


@pytest.mark.skipif("+avx512vnni" not in host_features().split(","), reason="this CPU has no AVX-512 VNNI")
def test_vnni_matches_the_plain_loop_bit_for_bit(recipe):
    q, feats = _q8_dense(recipe)
    fast = CompiledModel(q, "kq_vnni").run(feats)
    plain = CompiledModel(q, "kq_plain", options={"target": _host_variant("+sse4.2")}).run(feats)  # per-row loop
    np.testing.assert_array_equal(fast, plain)
    # and a dense_q8 alone, whose other ops are exact: equal to the interpreter bit for bit
    rng = np.random.default_rng(3)
    d = chain([("input", {"size": 80}, {}),
               ("dense", {}, {"weight": rng.normal(0, 0.2, (31, 80)).astype(np.float32),
                              "bias": rng.normal(0, 0.1, 31).astype(np.float32)}),
               ("output", {}, {})], {})
    dq = quantize_graph(d, calibrate(d, [feats]))
    np.testing.assert_array_equal(CompiledModel(dq, "kq_dense").run(feats), Interpreter(dq).run(feats))


def _avx2_dot(w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The AVX2 kernel's integer arithmetic, instruction by instruction, for (rows, 4k) int8 weights:
    vpsignb, vpmaddubsw (int16 pair sums, saturating), vpmaddwd by ones, int32 adds."""
    aw = np.abs(w.astype(np.int64))
    sx = np.sign(w.astype(np.int64)) * q.astype(np.int64)[None, :]
    prod = aw * sx
    pairs = prod[:, 0::2] + prod[:, 1::2]
    p16 = np.clip(pairs, -(2**15), 2**15 - 1)  # vpmaddubsw saturates to int16
    return p16.sum(axis=1)


def test_avx2_int8_products_never_saturate():
    rng = np.random.default_rng(4)
    extremes = np.array([127, -127, 127, -127, 0, 1, -1, 127], np.int8)
    w = np.concatenate([rng.integers(-127, 128, (40, 64)), np.tile(extremes, (4, 8)),
                        np.full((2, 64), 127), np.full((2, 64), -127)]).astype(np.int8)
    for q in (rng.integers(-127, 128, 64), np.full(64, 127), np.full(64, -127), np.tile([127, -127], 32)):
        np.testing.assert_array_equal(_avx2_dot(w, q), w.astype(np.int64) @ q.astype(np.int64))


def test_cpu_levels_imply_their_features():
    v3 = Target("x86_64-unknown-linux-gnu", "x86-64-v3", "", 3, "v3")
    assert {"+avx2", "+fma"} <= v3.feature_set and "+avx512f" not in v3.feature_set
    assert "+avx2" not in Target("x86_64-unknown-linux-gnu", "x86-64-v3", "-avx2", 3, "v3").feature_set
    assert "+avx2" not in Target("x86_64-unknown-linux-gnu", "x86-64-v2", "", 3, "v2").feature_set
    assert Target("x86_64-unknown-linux-gnu", "generic", "+avx2", 3, "c").feature_set == {"+avx2"}


def test_avx2_code_is_chosen_by_the_target(recipe):
    q, _ = _q8_dense(recipe)
    v3 = Target("x86_64-unknown-linux-gnu", "x86-64-v3", "", 3, "v3")
    v2 = Target("x86_64-unknown-linux-gnu", "x86-64-v2", "", 3, "v2")
    a3 = assembly(lower(q, "m", options={"target": v3}), v3)
    assert "vpmaddubsw" in a3 and "vpdpbusd" not in a3
    assert "vpmaddubsw" not in assembly(lower(q, "m", options={"target": v2}), v2)


@pytest.mark.skipif("+avx2" not in host_features().split(","), reason="this CPU has no AVX2")
def test_avx2_matches_the_plain_loop_and_the_interpreter_bit_for_bit(recipe, monkeypatch):
    q, feats = _q8_dense(recipe)
    monkeypatch.setenv("KWS_HOST_CPU", "x86-64-v3")  # Target.host(): code for an AVX2 machine without VNNI
    fast = CompiledModel(q, "kq_avx2").run(feats)
    v2 = Target(host_triple(), "x86-64-v2", "", 3, "v2")  # the plain per-row loop
    plain = CompiledModel(q, "kq_v2", options={"target": v2}).run(feats)
    np.testing.assert_array_equal(fast, plain)
    rng = np.random.default_rng(5)
    d = chain([("input", {"size": 80}, {}),
               ("dense", {}, {"weight": rng.normal(0, 0.2, (40, 80)).astype(np.float32),
                              "bias": rng.normal(0, 0.1, 40).astype(np.float32)}),
               ("output", {}, {})], {})
    dq = quantize_graph(d, calibrate(d, [feats]))
    np.testing.assert_array_equal(CompiledModel(dq, "kq_dense2").run(feats), Interpreter(dq).run(feats))


def test_cache_levels_and_residence(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                             (2, "Unified", "2048K"), (3, "Unified", "260M")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    caches = roofline.cache_levels(tmp_path)
    assert caches == [(1, "Data", 48 * 1024), (2, "Unified", 2 << 20), (3, "Unified", 260 << 20)]
    assert roofline.residence(40_000, caches) == 1
    assert roofline.residence(734_844, caches) == 2  # the ELL recipe's float weights on a 2 MB L2
    assert roofline.residence(734_844, [(1, "Data", 32 << 10), (2, "Unified", 512 << 10),
                                        (3, "Unified", 32 << 20)]) == 3  # Zen 3: 512 KB L2 spills
    assert roofline.residence(1 << 30, caches) is None
    assert roofline.cache_levels(tmp_path / "missing") == []


def test_floor_is_the_slower_of_bandwidth_and_flops():
    assert roofline.floor_us(1_000_000, 1_000, 100.0, 100.0) == pytest.approx(10.0)  # 1 MB at 100 GB/s
    assert roofline.floor_us(1_000, 2_000_000, 100.0, 100.0) == pytest.approx(20.0)  # 2 MFLOP at 100 GFLOP/s


def test_measuring_kernels_compute_exact_sums():
    k = roofline.Kernels()
    n, reps = 8 * k.width * 5, 3
    buf = np.ones(n + 16, np.float32)
    p = buf.ctypes.data + (-buf.ctypes.data % 64)
    # lane 0 of the 8 accumulators added: every accumulator saw n / (8 width) ones per pass
    assert k.stream(p, n, reps) == 8 * reps * n // (8 * k.width)
    # chain j starts at j and adds 1 * 1 per round: sum_j (j + rounds)
    assert k.fma(1.0, 100) == sum(j + 100 for j in range(roofline._CHAINS))
    assert roofline.read_bandwidth(64 << 10, k, repeat=1, work=1e6) > 0
    assert roofline.fma_rate(k, repeat=1, rounds=1000) > 0
