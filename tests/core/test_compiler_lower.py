"""The compiler's stages and their boundaries: lower() is pure and golden-testable, targets are
data with presets, the cache keys on (IR hash, target), and bad input is a clear CompileError."""

import os
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from core.compiler import build
from core.compiler.build import compile_ir
from core.compiler.export import export
from core.compiler.lower import LOWERINGS, check_module_name, lower, unsupported_ops
from core.compiler.runtime import CompiledModel
from core.compiler.targets import PRESETS, Target, resolve_target
from core.errors import CompileError
from core.graph import ops as graph_ops
from core.graph.ir import Graph, Node, chain
from core.pipeline import KeywordSpotter

GOLDEN = Path(__file__).parent / "golden" / "compiler_scale_softmax.ll"
ROOT = Path(__file__).resolve().parents[2]


def tiny() -> Graph:
    return chain(
        [
            ("input", {"size": 32}, {}),
            ("scale", {"factor": 2.5}, {}),
            ("softmax", {}, {}),
            ("output", {}, {}),
        ],
        {"kind": "classifier", "categories": list("abcdefghijklmnopqrstuvwxyzABCDEF")},
    )


def test_lower_is_pure_and_matches_the_golden_ir():
    g = tiny()
    before = g.copy()
    ir = lower(g, "tiny")
    assert lower(g, "tiny") == ir  # deterministic
    assert [n.attrs for n in g.nodes] == [n.attrs for n in before.nodes]  # the graph is not modified
    if os.environ.get("KWS_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(ir)
    assert ir == GOLDEN.read_text(), "IR changed: inspect, then regenerate with KWS_UPDATE_GOLDEN=1"


def test_ir_shape():
    """No mutable globals (state lives in the context), weights are constants, fast-math flags on
    float ops, vectorize hints on loops, the documented API."""
    ir = lower(tiny(), "tiny")
    globals_ = [ln for ln in ir.splitlines() if ln.startswith("@")]
    assert globals_ and all(" constant " in ln for ln in globals_)
    assert "fmul nsz arcp contract float" in ir and "llvm.loop.vectorize.enable" in ir
    for fn in ("context_size", "reset", "predict", "predict_frames", "input_size", "output_size", "metadata"):
        assert f"@tiny_{fn}(" in ir
    assert "\\22categories\\22: [\\22a\\22, \\22b\\22, \\22c\\22" in ir  # metadata JSON, escaped


def test_every_graph_op_is_lowered_or_refused_clearly(monkeypatch):
    assert {"input", "output", "gru", "lstm", "vad", "fft_mag", "filterbank", "conv", "pool"} <= set(LOWERINGS)
    # a new op without a lowering: a CompileError naming it, and KeywordSpotter falls back
    monkeypatch.setitem(graph_ops.OPS, "mystery", graph_ops.OPS["identity"])
    g = Graph([Node("x", "input", [], {"size": 4}), Node("m", "mystery", ["x"]), Node("o", "output", ["m"])])
    assert [n.id for n in unsupported_ops(g)] == ["m"]
    with pytest.raises(CompileError, match="node 'm': op 'mystery' is not supported by the compiler"):
        lower(g, "m")
    spotter = KeywordSpotter(g, None)
    assert spotter.backend == "interpreter" and "mystery" in spotter.fallback_reason
    with pytest.raises(CompileError, match="mystery"):
        KeywordSpotter(g, None, backend="compiled")


@pytest.mark.parametrize(
    "name", ["9lives", "has space", "dash-name", "", "x" * 64, "int", "while", "__x", "café", "a;b", 'q"']
)
def test_bad_module_names(name, tmp_path):
    with pytest.raises(CompileError, match="module name"):
        check_module_name(name)
    with pytest.raises(CompileError, match="module name"):
        export(tiny(), tmp_path / "out", target=Target.preset("aarch64"), module_name=name)
    assert not (tmp_path / "out").exists()


def test_good_module_names():
    for name in ("kws", "_private", "Model2", "a" * 63):
        assert check_module_name(name) == name


def test_targets_are_data_with_presets():
    pi3 = Target.preset("pi3")
    assert (pi3.triple, pi3.cpu) == (
        "armv7-unknown-linux-gnueabihf",
        "cortex-a53",
    ) and "+neon" in pi3.features
    assert Target.preset("pi0").cpu == "arm1176jzf-s" and Target.preset("pi0").triple.startswith("armv6")
    assert Target.preset("aarch64").triple == Target.preset("pi3_64").triple == "aarch64-unknown-linux-gnu"
    assert set(PRESETS) == {"pi3", "pi0", "pi3_64", "aarch64", "cortex-m4", "cortex-m0"}
    host = Target.host()
    assert host.is_native() and host.cpu and host.name == "host"
    with pytest.raises(FrozenInstanceError):
        pi3.cpu = "x"  # type: ignore[misc]
    custom = resolve_target(triple="armv7-unknown-linux-gnueabihf", cpu="cortex-a72", features="+neon")
    assert custom.name == "custom" and custom.cpu == "cortex-a72"
    assert resolve_target("pi3", opt_level=1).opt_level == 1
    for bad in (
        dict(triple="nonsense"),
        dict(triple="x86_64-linux-gnu", features="neon"),
        dict(triple="x86_64-linux-gnu", opt_level=7),
    ):
        with pytest.raises(CompileError):
            resolve_target(**bad)


def test_unknown_targets():
    with pytest.raises(CompileError, match="unknown target 'pi9'.*host, pi3, pi0, pi3_64, aarch64"):
        resolve_target("pi9")
    with pytest.raises(CompileError, match="unknown target triple 'mips9-foo-linux'"):
        resolve_target(triple="mips9-foo-linux")
    with pytest.raises(CompileError, match="cannot run code for aarch64"):
        CompiledModel(tiny(), "t", target=Target.preset("aarch64"))


def test_cache_keys_on_ir_and_target(monkeypatch):
    ir = lower(tiny(), "cache_test")
    calls = []
    real = build.optimise
    monkeypatch.setattr(build, "optimise", lambda *a: calls.append(a[1]) or real(*a))
    build._CACHE.clear()
    a = compile_ir(ir, Target.preset("pi3"))
    assert compile_ir(ir, Target.preset("pi3")) is a
    compile_ir(ir, Target.preset("aarch64"))
    compile_ir(ir.replace("cache_test", "cache_tesu"), Target.preset("pi3"))
    assert [t.name for t in calls] == ["pi3", "aarch64", "pi3"]


def test_unwritable_output_folder_keeps_what_was_there(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    with pytest.raises(CompileError, match="exists and is not a folder"):
        export(tiny(), blocker, target=Target.preset("pi3"), module_name="t")
    with pytest.raises(CompileError, match="cannot create the output folder"):
        export(tiny(), blocker / "sub", target=Target.preset("pi3"), module_name="t")
    assert blocker.read_text() == "keep me"
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(CompileError, match="not writable"):
            export(tiny(), ro, target=Target.preset("pi3"), module_name="t")


def test_export_keeps_other_files_and_rewrites_its_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "t.h").write_text("stale")
    r = export(tiny(), out, target=Target.preset("aarch64"), module_name="t")
    assert (out / "notes.txt").read_text() == "mine" and "t_predict_frames" in (out / "t.h").read_text()
    assert not r.demo and not (out / "t_demo.c").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    with pytest.raises(CompileError, match="3 categories but the model has 32 outputs"):
        export(tiny(), out, target=Target.preset("aarch64"), module_name="t", categories=["a", "b", "c"])


def test_stage_size_mismatch_is_a_compile_error():
    a = chain([("input", {"size": 4}, {}), ("output", {}, {})], {"kind": "featurizer"})
    b = chain([("input", {"size": 5}, {}), ("output", {}, {})], {"kind": "classifier"})
    with pytest.raises(CompileError, match="expects 5 inputs but .* emits 4"):
        lower([a, b], "ab")


def test_malformed_graph_is_a_compile_error():
    g = chain(
        [
            ("input", {"size": 4}, {}),
            ("dense", {}, {"weight": np.zeros((3, 5), np.float32)}),
            ("output", {}, {}),
        ]
    )
    with pytest.raises(CompileError):
        lower(g, "bad")


def kws(*args):
    return subprocess.run(
        [sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.shared
def test_cli_compile(shared_data, tmp_path):
    d = shared_data / "ell_devkit_model"
    out = kws(
        "compile",
        d / "featurizer.ell",
        d / "classifier.ell",
        "--target",
        "pi3",
        "--module-name",
        "kws",
        "--outdir",
        tmp_path / "pi3",
        "--emit-ir",
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pi3" / "kws.o").exists() and (tmp_path / "pi3" / "kws.ll").exists()
    assert (tmp_path / "pi3" / "categories.txt").read_text().splitlines()[20] == "seven"  # from beside the model
    wav = shared_data / "ell_examples" / "bed.wav"
    runs = [
        kws(
            "run",
            "-f",
            d / "featurizer.ell",
            "-c",
            d / "classifier.ell",
            "-cat",
            d / "categories.txt",
            "-w",
            wav,
            *flag,
        )
        for flag in ([], ["--compiled"], ["--interpreter"])
    ]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    detections = [[ln for ln in r.stdout.splitlines() if ln.startswith("<<<")] for r in runs]
    assert detections[0] == detections[1] == detections[2] == ["<<< DETECTED (1) 93% bed >>>"]
    for args, msg in [
        (("--target", "pi9"), "unknown target 'pi9'"),
        (("--module-name", "9x"), "not a C identifier"),
        (("--outdir", tmp_path / "pi3" / "kws.o"), "exists and is not a folder"),
        (("--triple", "foo-bar-baz"), "unknown target triple"),
    ]:
        bad = kws("compile", d / "featurizer.ell", *args)
        assert bad.returncode == 2 and msg in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_compiles_from_several_threads_at_once():
    """The GUI compiles on worker threads: concurrent compiles and JITs are safe."""
    import threading

    graphs = [
        chain([("input", {"size": 64}, {}), ("scale", {"factor": float(i + 1)}, {}), ("output", {}, {})])
        for i in range(6)
    ]
    results, errors = {}, []

    def work(i):
        try:
            results[i] = CompiledModel(graphs[i], f"thread{i}").step(np.ones(64, np.float32))[0]
            compile_ir(lower(graphs[i], f"obj{i}"), Target.preset("pi3"))
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and results == {i: float(i + 1) for i in range(6)}
