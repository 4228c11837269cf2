"""Raspberry Pi exports: objects carry the right ELF machine and float ABI; pi3 (armv7 hard float,
NEON) and aarch64 folders build with the cross compilers and CMake, and their demo runs under
qemu on real clips, printing the host's detections with probabilities within 1e-4 of the host.
The tools come from `make sysdeps` (scripts/sysdeps.sh); missing tools fail, they do not skip."""

import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
from compiler_helpers import clip_hops, float32_rtol, real_clips, rel_err
from test_compiler_export import host_detections

from core.compiler.build import compile_ir
from core.compiler.export import export
from core.compiler.lower import lower
from core.compiler.runtime import CompiledModel
from core.compiler.targets import Target

pytestmark = pytest.mark.shared

EF_ARM_ABI_FLOAT_HARD = 0x400
SYSROOT = {
    "pi3": "/usr/arm-linux-gnueabihf",
    "pi0": "/usr/arm-linux-gnueabihf",
    "aarch64": "/usr/aarch64-linux-gnu",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (
        f"{name} is missing: run `make sysdeps` (scripts/sysdeps.sh installs the cross tools and qemu)"
    )
    return path


def elf_header(data: bytes) -> dict:
    assert data[:4] == b"\x7fELF"
    is64 = data[4] == 2
    machine = struct.unpack_from("<H", data, 18)[0]
    flags = struct.unpack_from("<I", data, 48 if is64 else 36)[0]
    etype = struct.unpack_from("<H", data, 16)[0]
    return {"class": 64 if is64 else 32, "machine": machine, "flags": flags, "type": etype}


def arm_attributes(path) -> str:
    return subprocess.run(
        [tool("arm-linux-gnueabihf-readelf"), "-A", str(path)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def devkit_ir(devkit):
    feat, clf, cats = devkit
    return lower([feat, clf], "kws")


@pytest.mark.parametrize(
    "name, machine, bits", [("pi3", 40, 32), ("pi0", 40, 32), ("aarch64", 183, 64), ("pi3_64", 183, 64)]
)
def test_objects_carry_machine_and_float_abi(devkit_ir, tmp_path, name, machine, bits):
    t = Target.preset(name)
    obj = compile_ir(devkit_ir, t)
    h = elf_header(obj)
    assert (h["machine"], h["class"], h["type"]) == (machine, bits, 1)  # ET_REL
    assert t.elf_machine == machine
    if t.is_arm32:
        assert h["flags"] & EF_ARM_ABI_FLOAT_HARD, "hard-float ABI flag"
        (tmp_path / "m.o").write_bytes(obj)
        attrs = arm_attributes(tmp_path / "m.o")
        assert "Tag_ABI_VFP_args: VFP registers" in attrs
        if name == "pi3":
            assert "Tag_CPU_arch: v8" in attrs and "NEON" in attrs
        else:  # arm1176jzf-s: ARMv6, VFPv2, no NEON
            assert re.search(r"Tag_CPU_arch: v6(KZ)?\n", attrs) and "VFPv2" in attrs and "NEON" not in attrs


def test_host_object_is_native(devkit_ir):
    h = elf_header(compile_ir(devkit_ir, Target.host()))
    assert h["machine"] == Target.host().elf_machine


def test_neon_code_is_vectorised(devkit_ir):
    from core.compiler.build import assembly

    asm = assembly(devkit_ir, Target.preset("pi3"))
    assert re.search(r"\bvfma\.f32\s+q\d+", asm) or re.search(r"\bvmla\.f32\s+q\d+", asm)
    asm64 = assembly(devkit_ir, Target.preset("aarch64"))
    assert re.search(r"\bfmla\s+v\d+\.4s", asm64)


def cross_build(folder, name: str) -> None:
    t = Target.preset(name)
    gcc = tool(f"{t.gcc_prefix}gcc")
    proc = "arm" if t.is_arm32 else "aarch64"
    for cmd in (
        [
            "cmake",
            "-S",
            ".",
            "-B",
            "build",
            "-DCMAKE_SYSTEM_NAME=Linux",
            f"-DCMAKE_SYSTEM_PROCESSOR={proc}",
            f"-DCMAKE_C_COMPILER={gcc}",
        ],
        ["cmake", "--build", "build"],
    ):
        out = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout}\n{out.stderr}"


def qemu_run(folder, name: str, *args) -> str:
    t = Target.preset(name)
    out = subprocess.run(
        [tool(t.qemu), "-L", SYSROOT[name], str(folder / "build" / "kws_demo"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def host_jit(devkit):
    return CompiledModel(list(devkit[:2]), "kws")


@pytest.mark.parametrize("name", ["pi3", "aarch64", "pi0"])
def test_cross_build_runs_under_qemu_like_the_host(devkit, shared_data, tmp_path_factory, host_jit, name):
    feat, clf, cats = devkit
    folder = tmp_path_factory.mktemp(name) / f"kws_{name}"
    export([feat, clf], folder, target=Target.preset(name), module_name="kws", categories=cats)
    cross_build(folder, name)
    demo = (folder / "build" / "kws_demo").read_bytes()
    h = elf_header(demo)
    assert h["machine"] == Target.preset(name).elf_machine and h["type"] in (2, 3)
    if name != "aarch64":
        assert h["flags"] & EF_ARM_ABI_FLOAT_HARD
    clips = real_clips(shared_data, per_word=1, words=6 if name != "pi0" else 2)
    detected = 0
    for clip in clips:
        # detections: the same lines as the host pipeline
        lines = qemu_run(folder, name, clip).splitlines()
        got = [ln for ln in lines if ln.startswith("<<<")]
        assert got == host_detections(devkit, clip), clip
        detected += bool(got)
        assert lines[-1].startswith("Average processing time: ")
        # probabilities: within float32 summation-order noise of the host JIT (ARM vs x86 code)
        probs = np.array(
            [
                [float(v) for v in ln.split()[1:]]
                for ln in qemu_run(folder, name, "--probs", clip).splitlines()
            ]
        )
        host_jit.reset()
        x = clip_hops(clip, 512)
        ref = host_jit.run(x)
        assert probs.shape == ref.shape and rel_err(probs, ref) <= float32_rtol([feat, clf], x), clip
    assert detected >= len(clips) // 2
