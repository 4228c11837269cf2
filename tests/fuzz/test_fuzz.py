"""Every registered format survives a few hundred seeded mutations; the runner sees every failure kind."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from core.errors import DataError

from .formats import Format, all_formats
from .mutate import mutate_json, mutate_npy, mutate_zip
from .runner import GiB, Runner, campaign

CASES = int(os.environ.get("KWS_FUZZ_CASES", "250"))
FORMATS = all_formats()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_format_survives_fuzzing(name, tmp_path):
    report = campaign(FORMATS[name], CASES, seed=0, timeout_s=30.0, keep_dir=tmp_path)
    shown = "\n".join(f"case {i} {kind}: {detail[-1500:]}" for i, kind, detail, _ in report.failures[:3])
    assert report.failed == 0, f"{report.summary()}\n{shown}"
    # a mutator that never gets through, or never breaks anything, tests nothing
    assert report.counts["loaded"] > 0 and report.counts["refused"] > 0, report.summary()


def _raise_value_error(path):
    raise ValueError("untyped")


def _raise_data_error(path):
    raise DataError(f"{path}: refused")


def _sleep(path):
    time.sleep(60)


def _allocate(path):
    return bytearray(8 * GiB)


def _segfault(path):
    os.kill(os.getpid(), signal.SIGSEGV)


def _return(path):
    return None


@pytest.mark.parametrize("load, outcome", [
    (_return, "loaded"), (_raise_data_error, "refused"), (_raise_value_error, "untyped"),
    (_allocate, "untyped"), (_sleep, "hang"), (_segfault, "crash"),
])
def test_runner_sorts_outcomes(load, outcome, tmp_path):
    with Runner(load, timeout_s=1.0, mem_bytes=1 * GiB) as r:
        got, detail = r.run(str(tmp_path / "x"))
        assert got == outcome, detail
        assert r.run(str(tmp_path / "x"))[0] == outcome  # a fresh worker after a hang or a crash
    if outcome == "untyped" and load is _allocate:
        assert "MemoryError" in detail


def test_campaign_reports_failures_and_keeps_the_inputs(tmp_path):
    fmt = Format("boom", ".bin", lambda: [b"seed"], lambda p: open(p, "rb").read()[0] == 0x73 or 1 / 0)
    report = campaign(fmt, 40, seed=1, keep_dir=tmp_path)
    assert report.counts["untyped"] > 0 and report.failed == len(report.failures)
    kept = report.failures[0][3]
    assert kept.parent == tmp_path and kept.read_bytes()[:1] != b"s"


def test_mutators_are_deterministic_and_change_the_input():
    seeds = [s for f in ("kwm", "npy") for s in FORMATS[f].seeds()]
    for mutate in (lambda r, d, s: mutate_zip(r, d, s, {"json": mutate_json, "npy": mutate_npy}), mutate_npy):
        outs = [mutate(random.Random(i), seeds[0], seeds) for i in range(20)]
        assert outs == [mutate(random.Random(i), seeds[0], seeds) for i in range(20)]
        assert sum(o != seeds[0] for o in outs) >= 15
