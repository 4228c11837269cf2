"""kws bench's machine-floor lines: where the weights live (by size against the cache sizes), the
floor of each stage (max of bytes over the measured read bandwidth and FLOPs over the measured FMA
rate, float32 for both stages) and our times as multiples of it. The
measurements are replaced by fixed numbers here, so the arithmetic is checked, not this CPU."""

import gc

import numpy as np
import pytest

from core.commands import bench
from core.compiler import roofline


def test_floor_lines(capsys, monkeypatch):
    monkeypatch.setattr(roofline, "cache_levels", lambda: [(1, "Data", 48 << 10), (2, "Unified", 2 << 20),
                                                            (3, "Unified", 32 << 20)])
    monkeypatch.setattr(roofline, "read_bandwidth", lambda nbytes, k, repeat: 200.0 if nbytes <= 48 << 10 else 100.0)
    monkeypatch.setattr(roofline, "fma_rate", lambda k, repeat: 200.0)
    fs = {"macs": 10_000, "weight_bytes": 80 << 10}  # 20 kFLOP at 200 GFLOP/s: 0.1 us; 80 KiB: 0.82 us
    cs = {"macs": 182_175, "weight_bytes": 734_844}  # 7.35 us at 100 GB/s beats 1.82 us of FLOPs
    t = bench.Table({"featurizer": fs["macs"], "classifier": cs["macs"]}, {"featurizer": 0, "classifier": 734_844})
    t.rows["compiled, one native call per frame"] = {"featurizer": 3.0, "classifier": 10.0, "both": 12.0}
    t.rows["compiled, one call per block of 100 frames"] = {"featurizer": 2.0, "classifier": 9.0, "both": 11.0}
    t.rows["compiled int8, one native call per frame"] = {"classifier": 4.0}
    t.call_us = 1.0  # a compiled no-op called per frame the same way
    bench._floor(t, fs, cs, 194_680)
    out = capsys.readouterr().out
    f_floor, c_floor = (80 << 10) / 100e3, 734_844 / 100e3
    assert "classifier weights 718 KiB live in L2" in out, out
    assert f"classifier floor {c_floor:.2f} us (bandwidth-bound)" in out, out
    assert f"featurizer floor {f_floor:.2f} us (80.0 KiB of non-zero tables in L2" in out, out
    floor = f_floor + c_floor
    assert (f"= {12.0 / floor:.2f}x the floor {floor:.2f} us; {11.0 / floor:.2f}x net of the 1.00 us call from "
            f"Python; {11.0 / floor:.2f}x in block calls") in out, out
    assert f"classifier alone {10.0 / c_floor:.2f}x" in out, out
    q_floor = 194_680 / 100e3  # int8: bytes-bound too (FLOPs at 4x the float rate)
    assert f"int8 classifier {4.0 / q_floor:.2f}x its floor {q_floor:.2f} us (190 KiB in L2)" in out, out
    assert q_floor == pytest.approx(1.9468)


def test_paired_runs_divide_each_time_by_the_floor_measured_beside_it(capsys, monkeypatch):
    """Under a varying load the best time and the best bandwidth come from different moments; the
    paired line divides each run's time by a floor measured right after it and prints their median."""
    monkeypatch.setattr(roofline, "cache_levels", lambda: [(1, "Data", 48 << 10), (2, "Unified", 2 << 20)])
    bandwidths = iter([100.0, 100.0, 50.0, 25.0])  # the stage floors, then one per paired run
    monkeypatch.setattr(roofline, "read_bandwidth", lambda nbytes, k, repeat: next(bandwidths))
    monkeypatch.setattr(roofline, "fma_rate", lambda k, repeat: 1e6)  # FLOPs never bound here
    fs = {"macs": 1, "weight_bytes": 100_000}  # 1.0 us at 100 GB/s
    cs = {"macs": 1, "weight_bytes": 300_000}  # 3.0 us at 100 GB/s, 6.0 at 50, 12.0 at 25
    t = bench.Table({"featurizer": 1, "classifier": 1}, {"featurizer": 0, "classifier": 300_000})
    t.rows["compiled, one native call per frame"] = {"featurizer": 1.0, "classifier": 5.0, "both": 6.0}
    times = iter([7.0, 14.0])  # the second run under twice the load of the first
    seen = []

    def paired(floor):
        for us in times:
            f = floor()
            seen.append(f)
            yield us, f
    t.paired = lambda floor: list(paired(floor))
    t.call_us = 0.7
    bench._floor(t, fs, cs, None)
    out = capsys.readouterr().out
    assert seen == [pytest.approx(1.0 + 6.0), pytest.approx(1.0 + 12.0)]
    assert "1.50x the floor 4.00 us" in out, out  # the best time over the first floor
    median, net = (1.0 + 14.0 / 13.0) / 2, ((7.0 - 0.7) / 7.0 + (14.0 - 0.7) / 13.0) / 2
    assert (f"median {median:.2f}x the floor (runs {1.0:.2f}-{14.0 / 13.0:.2f}x), {net:.2f}x net of the call "
            "from Python") in out, out


def test_featurizer_floor_is_at_the_float32_rate(capsys, monkeypatch):
    """The featurizer runs in float32 vector code: its FLOP floor is at the full float32 FMA rate."""
    monkeypatch.setattr(roofline, "cache_levels", lambda: [(1, "Data", 48 << 10), (2, "Unified", 2 << 20)])
    monkeypatch.setattr(roofline, "read_bandwidth", lambda nbytes, k, repeat: 200.0)
    monkeypatch.setattr(roofline, "fma_rate", lambda k, repeat: 200.0)
    fs = {"macs": 200_000, "weight_bytes": 8 << 10}  # 400 kFLOP at 200 GFLOP/s: 2.0 us; 8 KiB: 0.04 us
    cs = {"macs": 1000, "weight_bytes": 4000}
    t = bench.Table({"featurizer": fs["macs"], "classifier": cs["macs"]}, {"featurizer": 0, "classifier": 4000})
    t.rows["compiled, one native call per frame"] = {"featurizer": 3.0, "classifier": 1.0, "both": 4.0}
    bench._floor(t, fs, cs, None)
    assert "featurizer floor 2.00 us" in capsys.readouterr().out


def test_featurizer_floor_reads_only_the_non_zero_filterbank():
    """A mel bank is mostly zeros: the floor counts the weights a frame must read, the non-zero ones."""
    from core.features.featurizer import FeaturizerConfig, build_featurizer

    g = build_featurizer(FeaturizerConfig(sample_rate=16000, window_size=512, hop_length=512, n_filters=80))
    w = g.by_op("filterbank")[0].params["weights"]
    assert bench._needed_bytes(g) == 4 * int((w != 0).sum()) < w.nbytes / 10


def test_a_per_frame_call_keeps_its_model_alive():
    """`kws bench` times calls of a model it holds nowhere else (the no-op that measures the call
    itself): the call keeps the model's code and context alive (freed, the call crashed Python)."""
    frames = np.arange(4, dtype=np.float32).reshape(4, 1)
    f = bench.native_step(bench._noop(), frames)
    gc.collect()
    for i in range(4):
        f(i)
        assert f.model._out[0] == frames[i, 0]  # the no-op copies its one input to its output
