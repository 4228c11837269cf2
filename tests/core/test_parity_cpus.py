"""The parity tolerances hold whatever the x86-64 CPU: host code built for x86-64-v2 (SSE4.2),
x86-64-v3 (AVX2 + FMA) and this CPU's own features, and numpy's OpenBLAS forced to different
kernels (OPENBLAS_CORETYPE), all agree with the interpreter within float32_rtol on real clips.
A tolerance tighter than float32 summation-order noise fails here on any one machine."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from compiler_helpers import clip_hops, float32_rtol, real_clips, rel_err

from core.compiler.build import host_features, host_triple
from core.compiler.runtime import CompiledModel
from core.compiler.targets import Target
from core.graph.interpreter import Interpreter

pytestmark = pytest.mark.skipif(not host_triple().startswith("x86_64"), reason="x86-64 CPU levels")


def _levels() -> list[str]:
    """The x86-64 levels this CPU can run (a JIT for a level the CPU lacks would fault)."""
    feats = set(host_features().split(","))
    levels = ["x86-64-v2"]
    if {"+avx2", "+fma", "+bmi2"} <= feats:
        levels.append("x86-64-v3")
    return levels


@pytest.fixture(scope="module")
def clips(shared_data, devkit):
    feat = devkit[0]
    out = []
    for p in real_clips(shared_data, per_word=1, words=6):
        x = clip_hops(p, 512)
        out.append((p, x, float32_rtol(list(devkit[:2]), x)))
    assert out and feat is not None
    return out


@pytest.mark.parametrize("cpu", ["native", *_levels()])
def test_host_code_for_each_cpu_level(devkit, clips, cpu, monkeypatch):
    feat, clf, _ = devkit
    if cpu != "native":
        monkeypatch.setenv("KWS_HOST_CPU", cpu)
    target = Target.host()
    assert (target.cpu == cpu) == (cpu != "native")
    model = CompiledModel([feat, clf], "kws", target=target)
    fi, ci = Interpreter(feat), Interpreter(clf)
    for path, x, rtol in clips:
        model.reset()
        fi.reset()
        ci.reset()
        ref = ci.run(fi.run(x))
        assert rel_err(model.run(x), ref) <= rtol, (cpu, path.name)


_INTERPRETER = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from compiler_helpers import clip_hops
from core.importers.ell import load_ell
from core.graph.interpreter import Interpreter
feat, clf = (Interpreter(load_ell(p)) for p in sys.argv[2:4])
for i, p in enumerate(json.loads(sys.argv[4])):
    feat.reset(); clf.reset()
    np.save(f"{sys.argv[5]}/{i}.npy", clf.run(feat.run(clip_hops(__import__('pathlib').Path(p), 512))))
"""


@pytest.mark.parametrize("coretype", ["Prescott", "Sandybridge", "Haswell", "SkylakeX"])
def test_interpreter_under_each_openblas_kernel(devkit, clips, shared_data, coretype, tmp_path):
    """The reference interpreter's matrix products go through OpenBLAS; each kernel family sums in
    its own order. The compiled host code stays within float32_rtol of every one of them."""
    feat, clf, _ = devkit
    m = shared_data / "ell_devkit_model"
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype, "OPENBLAS_VERBOSE": "2"}
    here = os.path.dirname(__file__)
    out = subprocess.run(
        [sys.executable, "-c", _INTERPRETER, here, str(m / "featurizer.ell"), str(m / "classifier.ell"),
         json.dumps([str(p) for p, _, _ in clips]), str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Core:" in out.stdout + out.stderr  # OpenBLAS honoured the kernel choice
    model = CompiledModel([feat, clf], "kws")
    for i, (path, x, rtol) in enumerate(clips):
        model.reset()
        assert rel_err(model.run(x), np.load(tmp_path / f"{i}.npy")) <= rtol, (coretype, path.name)
