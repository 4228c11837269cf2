"""Check an exported folder where it will run: build it (cmake; the Debian cross compiler for
ARM), run its demo on a clip (natively on the host, under qemu-user for ARM when installed), and
compare the detections with the host pipeline; time it per frame beside the host JIT and the
interpreter.

    build_export(folder, target, "kws")                  # -> folder/build/kws_demo
    v = verify_export(folder, target, "kws", featurizer, classifier, labels, clip)
    rows = benchmark(featurizer, classifier, clip, folder=folder, target=target, module_name="kws")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.compiler.targets import Target
from core.errors import CompileError
from core.graph.ir import Graph

SYSROOTS = {"qemu-arm": "/usr/arm-linux-gnueabihf", "qemu-aarch64": "/usr/aarch64-linux-gnu"}
Log = Callable[[str], None]


def _run(cmd: list[str], cwd: Path, what: str, timeout: float = 300, log: Log | None = None) -> str:
    if log:
        log("$ " + " ".join(cmd))
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise CompileError(f"{cmd[0]} not found: install it (scripts/sysdeps.sh)") from None
    except subprocess.TimeoutExpired:
        raise CompileError(f"{what} took longer than {timeout:.0f} s") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-12:]
        raise CompileError(f"{what} failed (exit {out.returncode}):\n" + "\n".join(tail))
    return out.stdout


def build_export(folder: str | os.PathLike, target: Target, module_name: str, *, log: Log | None = None) -> Path:
    """cmake + build in folder/build; returns the demo program (or the library without a demo)."""
    d = Path(folder)
    if target.is_bare_metal:
        return _build_mcu(d, target, module_name, log)
    if not (d / "CMakeLists.txt").is_file():
        raise CompileError(f"{d}: no CMakeLists.txt: compile (export) the model first")
    if shutil.which("cmake") is None:
        raise CompileError("cmake not found: install it (apt-get install cmake)")
    cmd = ["cmake", "-S", ".", "-B", "build", "-DCMAKE_BUILD_TYPE=Release"]
    if not target.is_native():
        prefix = target.gcc_prefix
        gcc = shutil.which(f"{prefix}gcc") if prefix else None
        if gcc is None:
            raise CompileError(
                f"no cross compiler for {target.triple}: install "
                f"{'gcc-' + prefix.rstrip('-') if prefix else 'one'} (scripts/sysdeps.sh)"
            )
        proc = "arm" if target.is_arm32 else "aarch64" if target.is_aarch64 else target.arch
        cmd += ["-DCMAKE_SYSTEM_NAME=Linux", f"-DCMAKE_SYSTEM_PROCESSOR={proc}", f"-DCMAKE_C_COMPILER={gcc}"]
    _run(cmd, d, "cmake configure", log=log)
    _run(["cmake", "--build", "build"], d, "cmake build", log=log)
    demo = d / "build" / f"{module_name}_demo"
    return demo if demo.exists() else d / "build" / f"lib{module_name}.so"


def _build_mcu(d: Path, target: Target, module_name: str, log: Log | None) -> Path:
    if not (d / "Makefile").is_file():
        raise CompileError(f"{d}: no Makefile: compile (export) the model for {target.name} first")
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("make") is None:
        raise CompileError("arm-none-eabi-gcc or make not found: install gcc-arm-none-eabi, libnewlib-arm-none-eabi "
                           "and make (scripts/sysdeps.sh)")
    _run(["make"], d, "make (arm-none-eabi-gcc)", log=log)
    return d / "build" / f"{module_name}_demo.elf"


@dataclass(frozen=True)
class MemoryUse:
    """Flash and RAM of a microcontroller image (arm-none-eabi-size: flash = text + data, RAM = data +
    bss, which holds the model context, the demo's buffers, stack and heap) against the part's."""

    text: int
    data: int
    bss: int
    flash_budget: int
    ram_budget: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    @property
    def fits(self) -> bool:
        return self.flash <= self.flash_budget and self.ram <= self.ram_budget

    def line(self) -> str:
        return (f"flash {self.flash / 1024:.1f} KiB of {self.flash_budget / 1024:.0f} KiB, "
                f"RAM {self.ram / 1024:.1f} KiB of {self.ram_budget / 1024:.0f} KiB "
                f"({'fits' if self.fits else 'does NOT fit'} the part)")


def memory_use(elf: str | os.PathLike, target: Target) -> MemoryUse:
    from core.compiler.targets import board_for

    out = _run(["arm-none-eabi-size", "-A", str(elf)], Path(elf).parent, "arm-none-eabi-size")
    sizes = {}
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    text = sum(v for k, v in sizes.items() if k in (".isr_vector", ".text", ".ARM.exidx", ".rodata"))
    bss = sum(v for k, v in sizes.items() if k in (".bss", ".heap", ".stack"))
    board = board_for(target)
    return MemoryUse(text, sizes.get(".data", 0), bss, board.flash_bytes, board.ram_bytes)


def runner(target: Target) -> list[str]:
    """How to start a program built for `target` here: [] natively, qemu-user otherwise."""
    if target.is_native():
        return []
    q = target.qemu
    exe = shutil.which(q) if q else None
    if exe is None:
        raise CompileError(
            f"cannot run {target.triple} code here: {q or 'an emulator'} is not installed "
            "(apt-get install qemu-user); copy the folder to the device instead"
        )
    return [exe, "-L", SYSROOTS.get(q, "/")]


def mcu_runner(target: Target, elf: Path) -> list[str]:
    """qemu-system-arm on the target's MPS2 board, semihosting on (the demo prints and exits through it)."""
    from core.compiler.targets import board_for

    if not elf.exists():
        raise CompileError(f"{elf}: not built (Verify builds it)")
    exe = shutil.which("qemu-system-arm")
    if exe is None:
        raise CompileError("qemu-system-arm not found: install it (scripts/sysdeps.sh)")
    return [exe, "-M", board_for(target).qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]


def run_demo(
    folder: str | os.PathLike,
    target: Target,
    module_name: str,
    clip: str | os.PathLike,
    args: Sequence[str] = (),
    *,
    log: Log | None = None,
) -> str:
    d = Path(folder)
    if target.is_bare_metal:  # the clip is embedded in the image at export time
        return _run(mcu_runner(target, d / "build" / f"{module_name}_demo.elf"), d, "qemu-system-arm", timeout=600,
                    log=log)
    demo = d / "build" / f"{module_name}_demo"
    if not demo.exists():
        raise CompileError(f"{demo}: not built (Verify builds it; a demo needs featurizer + classifier)")
    cmd = [*runner(target), str(demo), *map(str, args), str(Path(clip).resolve())]  # runs in the folder
    return _run(cmd, d, demo.name, timeout=600, log=log)


def demo_detections(stdout: str) -> tuple[list[str], float | None]:
    """(the `<<< DETECTED ... >>>` lines, the average processing time per frame in s)."""
    lines = stdout.splitlines()
    head = "Average processing time: "
    avg = next((float(ln[len(head) :]) for ln in lines if ln.startswith(head)), None)
    return [ln for ln in lines if ln.startswith("<<<")], avg


def host_detections(
    featurizer: Graph, classifier: Graph, labels: Sequence[str], clip: str | os.PathLike, backend: str = "auto"
) -> list[str]:
    from core.audio.wav import read_wav
    from core.pipeline import Detector, KeywordSpotter

    spotter = KeywordSpotter(featurizer, classifier, backend=backend)
    x, _ = read_wav(clip, spotter.sample_rate)
    _, probs = spotter.process(x)
    det = Detector(list(labels))
    return [d.line() for d in (det.update(p) for p in probs) if d is not None]


@dataclass(frozen=True)
class Verification:
    clip: str
    target: str
    device_lines: tuple[str, ...]
    host_lines: tuple[str, ...]
    seconds_per_frame: float | None
    how: str  # "native" or "qemu-arm ..."

    @property
    def passed(self) -> bool:
        return self.device_lines == self.host_lines


def verify_export(
    folder: str | os.PathLike,
    target: Target,
    module_name: str,
    featurizer: Graph,
    classifier: Graph,
    labels: Sequence[str],
    clip: str | os.PathLike,
    *,
    log: Log | None = None,
) -> Verification:
    """Build (if needed), run the demo on `clip`, and compare its detections with the host pipeline's."""
    demo = Path(folder) / "build" / f"{module_name}_demo{'.elf' if target.is_bare_metal else ''}"
    if not demo.exists():
        build_export(folder, target, module_name, log=log)
    how = ("native" if target.is_native() else f"qemu-system-arm -M {_board(target)}" if target.is_bare_metal
           else Path(runner(target)[0]).name)
    got, avg = demo_detections(run_demo(folder, target, module_name, clip, log=log))
    want = host_detections(featurizer, classifier, labels, clip)
    return Verification(str(clip), target.name, tuple(got), tuple(want), avg, how)


@dataclass(frozen=True)
class BenchRow:
    name: str
    us_per_frame: float
    note: str = ""


def _per_frame_us(step: Callable[[np.ndarray], object], blocks: np.ndarray, min_frames: int) -> float:
    reps = max(1, -(-min_frames // max(1, len(blocks))))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            for b in blocks:
                step(b)
        best = min(best, (time.perf_counter() - t0) / (reps * len(blocks)))
    return 1e6 * best


def benchmark(
    featurizer: Graph,
    classifier: Graph | None,
    clip: str | os.PathLike,
    *,
    folder: str | os.PathLike | None = None,
    target: Target | None = None,
    module_name: str = "model",
    frames: int = 600,
    log: Log | None = None,
    cancel=None,
) -> list[BenchRow]:
    """Per-frame time of featurizer + classifier: host JIT, interpreter, and the exported demo
    (native or under qemu, whose numbers are emulated, not the device's) when a folder is given."""
    from core.audio.wav import read_wav
    from core.compiler.runtime import CompiledModel
    from core.features.featurizer import hops
    from core.graph.interpreter import Interpreter
    from core.progress import check_cancel

    graphs = [featurizer] + ([classifier] if classifier is not None else [])
    meta = featurizer.metadata
    rate = int(meta.get("sample_rate") or meta.get("featurizer", {}).get("sample_rate") or 16000)
    x, _ = read_wav(clip, rate)
    blocks = np.ascontiguousarray(hops(x, featurizer.input_size), dtype=np.float32)
    if not len(blocks):
        raise CompileError(f"{clip}: shorter than one hop")
    rows = []
    jit = CompiledModel(graphs, "kws_bench")
    rows.append(BenchRow("host JIT (llvmlite)", _per_frame_us(jit.step, blocks, frames), "this machine"))
    check_cancel(cancel)
    rts = [Interpreter(g) for g in graphs]

    def interp(b):
        y = b
        for rt in rts:
            y = rt.step(y)

    rows.append(BenchRow("interpreter (numpy)", _per_frame_us(interp, blocks, frames // 4), "this machine"))
    check_cancel(cancel)
    if folder is not None and target is not None and classifier is not None:
        demo = Path(folder) / "build" / f"{module_name}_demo"
        if not demo.exists():
            build_export(folder, target, module_name, log=log)
        _, avg = demo_detections(run_demo(folder, target, module_name, clip, log=log))
        if avg is not None:
            note = "native" if target.is_native() else f"{runner(target)[0].rsplit('/', 1)[-1]} (emulated)"
            rows.append(BenchRow(f"exported demo ({target.name})", 1e6 * avg, note))
    if log:
        for r in rows:
            log(f"{r.name:<28} {r.us_per_frame:9.1f} us/frame  {r.note}")
    return rows


def _board(target: Target) -> str:
    from core.compiler.targets import board_for

    return board_for(target).qemu_machine
