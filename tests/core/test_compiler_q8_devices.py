"""The int8 DevKit model on devices: pi3 / aarch64 exports under qemu-user and Cortex-M4 / Cortex-M0
images under qemu-system-arm (mps2-an386 / mps2-an385) print the host's detections on real clips;
the microcontroller image has no malloc or file I/O, states its context size, and fits its part.
Tools come from scripts/sysdeps.sh; a missing tool fails, it does not skip."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from compiler_helpers import clip_hops, real_clips

from core.compiler.build import assembly
from core.compiler.export import export
from core.compiler.lower import lower
from core.compiler.targets import Target, board_for
from core.compiler.verify import build_export, host_detections, memory_use, run_demo
from core.graph.interpreter import Interpreter
from core.quantize import calibrate, quantize_graph

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run `make sysdeps` (scripts/sysdeps.sh)"
    return path


@pytest.fixture(scope="module")
def q8(devkit, shared_data):
    """The DevKit classifier in int8, calibrated on 8 real clips."""
    feat, clf, cats = devkit
    f = Interpreter(feat)
    frames = []
    for p in real_clips(shared_data, words=5):
        f.reset()
        frames.append(f.run(clip_hops(p, 512)))
    return feat, quantize_graph(clf, calibrate(clf, frames)), cats


def _detections(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln.startswith("<<<")]


@pytest.mark.parametrize("name", ["pi3", "aarch64"])
def test_int8_cross_builds_detect_like_the_host(q8, shared_data, tmp_path, name):
    feat, clf, cats = q8
    t = Target.preset(name)
    tool(f"{t.gcc_prefix}gcc"), tool(t.qemu)
    export([feat, clf], tmp_path / name, target=t, module_name="kws", categories=cats)
    build_export(tmp_path / name, t, "kws")
    found = 0
    for clip in real_clips(shared_data, words=3):
        got = _detections(run_demo(tmp_path / name, t, "kws", clip))
        assert got == host_detections(feat, clf, cats, clip), clip
        found += bool(got)
    assert found >= 3


def test_int8_dot_products_vectorise_where_there_is_simd(q8):
    ir = lower(q8[1], "q")
    assert "vpmaddwd" in assembly(ir, Target("x86_64-unknown-linux-gnu", "x86-64-v3", "", 3))  # AVX2
    assert "smull" in assembly(ir, Target.preset("aarch64"))  # NEON widening multiplies
    assert "vmla.i32" in assembly(ir, Target.preset("pi3"))
    assert "smlabb" in assembly(ir, Target.preset("cortex-m4"))  # the M4's DSP multiply-accumulate


@pytest.mark.parametrize("name, clip", [("cortex-m4", "seven.wav"), ("cortex-m0", "bed.wav")])
def test_microcontroller_image_runs_under_qemu_like_the_host(q8, shared_data, tmp_path, name, clip):
    feat, clf, cats = q8
    t = Target.preset(name)
    tool("arm-none-eabi-gcc"), tool("qemu-system-arm")
    wav = shared_data / "ell_examples" / clip
    folder = tmp_path / name
    export([feat, clf], folder, target=t, module_name="kws", categories=cats, demo_clip=wav)
    # no malloc, no files: the object needs nothing but memcpy/memset, sqrtf (FFT magnitudes on cores
    # without an FPU: libm's, linked with -lm) and the compiler's runtime helpers
    nm = subprocess.run([tool("arm-none-eabi-nm"), "-u", str(folder / "kws.o")], capture_output=True, text=True)
    undefined = {u for u in set(nm.stdout.split()) - {"U"} if not u.startswith("__aeabi_")}
    assert undefined <= {"memcpy", "memset", "memmove", "sqrtf"}, undefined
    ctx = int(re.search(r"#define KWS_CONTEXT_SIZE (\d+)", (folder / "kws.h").read_text()).group(1))
    assert f"ret i32 {ctx}\n" in lower([feat, clf], "kws")  # the header states the context the code uses
    attrs = subprocess.run([tool("arm-none-eabi-readelf"), "-A", str(folder / "kws.o")], capture_output=True,
                           text=True).stdout
    if name == "cortex-m4":
        assert "v7E-M" in attrs and "Tag_ABI_VFP_args: VFP registers" in attrs
    else:
        assert "v6S-M" in attrs and "VFP" not in attrs
    mem = memory_use(build_export(folder, t, "kws"), t)
    assert mem.fits and mem.ram >= ctx and mem.flash_budget == board_for(t).flash_bytes
    got = _detections(run_demo(folder, t, "kws", wav))
    assert got == host_detections(feat, clf, cats, wav) and got, got
    # the linker script is the part's memory: a part with too little RAM refuses the image
    ld = folder / "kws.ld"
    ld.write_text(re.sub(r"RAM \(rwx\)  : ORIGIN = 0x20000000, LENGTH = \d+",
                         f"RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = {ctx // 2}", ld.read_text()))
    out = subprocess.run(["make"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "overflowed" in out.stderr


def test_kws_compile_for_cortex_m4_prints_flash_and_ram(q8, shared_data, tmp_path):
    from core.graph import modelfile

    clf = tmp_path / "clf_int8.kwm"
    modelfile.save(q8[1], clf)
    d = shared_data / "ell_devkit_model"
    r = subprocess.run([sys.executable, "-m", "core", "compile", d / "featurizer.ell", clf, "--target", "cortex-m4",
                        "-n", "kws", "-o", tmp_path / "m4", "--categories", d / "categories.txt"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"flash ([\d.]+) KiB of 1024 KiB, RAM ([\d.]+) KiB of 256 KiB \(fits the part\)", r.stdout)
    assert m, r.stdout
    assert 0 < float(m.group(1)) < 1024 and 0 < float(m.group(2)) < 256
