"""The VAD node gives identical 0/1 sequences in the interpreter, the host JIT and exported ARM
code (pi3 armv7 hard float and aarch64, cross-built and run under qemu) on real clips, for ELL's
parameters, the DevKit's, a hangover and onset resets. Cross tools come from `make sysdeps`."""

import shutil
import subprocess

import numpy as np
import pytest
from compiler_helpers import clip_hops, real_clips

from core.compiler.export import export
from core.compiler.runtime import CompiledModel
from core.compiler.targets import Target
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node
from core.vad.model import model_vad
from core.vad.params import VadParams

pytestmark = pytest.mark.shared

DRIVER = r"""
#include <stdio.h>
#include "vadm.h"
/* frames of VADM_INPUT_SIZE float32 in, one float32 out per frame */
int main(int argc, char** argv) {
    FILE* in = fopen(argv[1], "rb");
    FILE* out = fopen(argv[2], "wb");
    if (!in || !out) return 2;
    vadm_context* ctx = vadm_create();
    float x[VADM_INPUT_SIZE], y[VADM_OUTPUT_SIZE];
    while (fread(x, sizeof(float), VADM_INPUT_SIZE, in) == VADM_INPUT_SIZE) {
        vadm_predict(ctx, x, y);
        fwrite(y, sizeof(float), VADM_OUTPUT_SIZE, out);
    }
    vadm_destroy(ctx);
    fclose(in);
    return fclose(out) != 0;
}
"""
SYSROOT = {"pi3": "/usr/arm-linux-gnueabihf", "aarch64": "/usr/aarch64-linux-gnu"}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run `make sysdeps` (scripts/sysdeps.sh installs cross tools and qemu)"
    return path


@pytest.fixture(scope="module")
def feats(shared_data, devkit):
    """DevKit features of real clips (Speech Commands words, ELL examples, micro_speech) as one stream."""
    f = Interpreter(devkit[0])
    return np.concatenate([f.run(clip_hops(p, 512)) for p in real_clips(shared_data, per_word=1)])


def _params(devkit):
    own = model_vad(devkit[1])[0]
    return {"ell": VadParams(), "devkit": own, "devkit_hold3": own.with_values(hold_frames=3),
            "ell_onset_hold2": VadParams().with_values(reset_on="onset", hold_frames=2)}


def _vad_graph(params: VadParams) -> Graph:
    attrs = params.to_dict() | {"frame_duration": 0.032, "sample_rate": 16000.0}
    return Graph([Node("x", "input", [], {"size": 80}), Node("v", "vad", ["x"], attrs),
                  Node("o", "output", ["v"])])


@pytest.mark.parametrize("name", ["ell", "devkit", "devkit_hold3", "ell_onset_hold2"])
def test_interpreter_and_host_jit_agree(feats, devkit, name):
    g = _vad_graph(_params(devkit)[name])
    ref = Interpreter(g).run(feats)[:, 0]
    assert 0 < ref.sum() < len(ref) and ((ref[:-1] == 1) & (ref[1:] == 0)).sum() >= 10
    assert np.array_equal(CompiledModel(g, "vadm").run(feats)[:, 0], ref)


@pytest.mark.parametrize("target", ["pi3", "aarch64"])
def test_exported_arm_code_agrees(feats, devkit, tmp_path, target):
    t = Target.preset(target)
    gcc, qemu = tool(f"{t.gcc_prefix}gcc"), tool(t.qemu)
    (tmp_path / "frames.f32").write_bytes(np.ascontiguousarray(feats, "<f4").tobytes())
    for name, params in _params(devkit).items():
        g = _vad_graph(params)
        ref = Interpreter(g).run(feats)[:, 0]
        folder = tmp_path / name
        export(g, folder, target=t, module_name="vadm")
        (folder / "drv.c").write_text(DRIVER)
        build = subprocess.run([gcc, "-O2", "-I.", "drv.c", "vadm_api.c", "vadm.o", "-o", "drv", "-lm"],
                               cwd=folder, capture_output=True, text=True, timeout=120)
        assert build.returncode == 0, build.stderr
        run = subprocess.run([qemu, "-L", SYSROOT[target], "./drv", str(tmp_path / "frames.f32"), "out.f32"],
                             cwd=folder, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        got = np.frombuffer((folder / "out.f32").read_bytes(), "<f4")
        assert got.tolist() == ref.tolist(), name
