"""kws bench's machine-floor lines: where the weights live (by size against the cache sizes), the
floor of each stage (max of bytes over the measured read bandwidth and FLOPs over the measured FMA
rate; the featurizer at half the float32 rate, float64) and our times as multiples of it. The
measurements are replaced by fixed numbers here, so the arithmetic is checked, not this CPU."""

import pytest

from core.commands import bench
from core.compiler import roofline


def test_floor_lines(capsys, monkeypatch):
    monkeypatch.setattr(roofline, "cache_levels", lambda: [(1, "Data", 48 << 10), (2, "Unified", 2 << 20),
                                                            (3, "Unified", 32 << 20)])
    monkeypatch.setattr(roofline, "read_bandwidth", lambda nbytes, k, repeat: 200.0 if nbytes <= 48 << 10 else 100.0)
    monkeypatch.setattr(roofline, "fma_rate", lambda k, repeat: 200.0)
    fs = {"macs": 10_000, "weight_bytes": 80 << 10}  # 20 kFLOP at 100 GFLOP/s (float64): 0.2 us; 80 KiB: 0.82 us
    cs = {"macs": 182_175, "weight_bytes": 734_844}  # 7.35 us at 100 GB/s beats 1.82 us of FLOPs
    t = bench.Table({"featurizer": fs["macs"], "classifier": cs["macs"]}, {"featurizer": 0, "classifier": 734_844})
    t.rows["compiled, one native call per frame"] = {"featurizer": 3.0, "classifier": 10.0, "both": 12.0}
    t.rows["compiled, one call per block of 100 frames"] = {"featurizer": 2.0, "classifier": 9.0, "both": 11.0}
    t.rows["compiled int8, one native call per frame"] = {"classifier": 4.0}
    bench._floor(t, fs, cs, 194_680)
    out = capsys.readouterr().out
    f_floor, c_floor = (80 << 10) / 100e3, 734_844 / 100e3
    assert "classifier weights 718 KiB live in L2" in out, out
    assert f"classifier floor {c_floor:.2f} us (bandwidth-bound)" in out, out
    assert f"featurizer floor {f_floor:.2f} us (80 KiB tables in L2" in out, out
    floor = f_floor + c_floor
    assert f"= {12.0 / floor:.2f}x the floor {floor:.2f} us; {11.0 / floor:.2f}x in block calls" in out, out
    assert f"classifier alone {10.0 / c_floor:.2f}x" in out, out
    q_floor = 194_680 / 100e3  # int8: bytes-bound too (FLOPs at 4x the float rate)
    assert f"int8 classifier {4.0 / q_floor:.2f}x its floor {q_floor:.2f} us (190 KiB in L2)" in out, out
    assert q_floor == pytest.approx(1.9468)
