"""This machine's floor for a model's frame: where its weights live (cache level, by size, from
/sys/devices/system/cpu/cpu0/cache), how fast one core reads that level, and how fast it does
float32 multiply-adds, both measured with tiny kernels compiled by the same JIT as the models.

    caches = cache_levels()                      # [(1, "Data", 49152), (2, "Unified", 2097152), ...]
    level = residence(734_844, caches)           # 2: the smallest data cache that holds the bytes
    bw = read_bandwidth(734_844)                 # GB/s streaming that many bytes, again and again
    fl = fma_rate()                              # GFLOP/s of float32 FMAs in registers, one core
    floor_us(734_844, 364_350, bw, fl)           # max(bytes / bw, flops / fl) in microseconds

A frame of a streaming classifier reads every weight once (the GRU's recurrent matvec cannot start
before the previous frame ends, so frames do not share weight reads): its time is at least the
weight bytes over the bandwidth of the level they sit in, and at least its FLOPs over the FMA rate.
Used by `kws bench`; speed claims live there, never in tests.
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import numpy as np

from core.compiler.emitter import Module
from core.compiler.kernels import simd_floats
from core.compiler.targets import Target

CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
_NAME = "roofline"
_CHAINS = 12  # independent FMA chains: covers latency 4-6 x 2 FMA ports


def _size_bytes(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    return int(text.rstrip("KMG") or 0) * mult


def cache_levels(root: Path = CACHE_DIR) -> list[tuple[int, str, int]]:
    """(level, type, bytes) of cpu0's data and unified caches, innermost first; [] when unknown."""
    out = []
    for d in sorted(root.glob("index*")):
        try:
            kind = (d / "type").read_text().strip()
            if kind == "Instruction":
                continue
            out.append((int((d / "level").read_text()), kind, _size_bytes((d / "size").read_text())))
        except (OSError, ValueError):
            continue
    return sorted(out)


def residence(nbytes: int, caches: list[tuple[int, str, int]]) -> int | None:
    """The innermost cache level holding `nbytes` (None: main memory, or caches unknown)."""
    for level, _, size in caches:
        if nbytes <= size:
            return level
    return None


def _ir(width: int) -> str:
    """Two kernels, `width` float lanes per vector: roofline_stream(p, n, reps) adds up n floats
    reps times with 8 vector accumulators; roofline_fma(a, n) runs n rounds of _CHAINS
    independent vector FMAs."""
    m = Module(_NAME)
    vt = f"<{width} x float>"
    m.declare("fma", f"declare {vt} @llvm.fmuladd.v{width}f32({vt}, {vt}, {vt})")
    fn = m.function(f"{_NAME}_stream", "float", [("ptr noalias readonly", "p"), ("i32", "n"), ("i32", "reps")])
    accs = []
    for _ in range(8):
        a = fn.alloca(vt, "acc")
        fn.emit(f"store {vt} zeroinitializer, ptr {a}, align 64")
        accs.append(a)
    with fn.loop("0", "%reps", hint="rep"):
        with fn.loop("0", "%n", step=8 * width, hint="blk") as i:
            for j, a in enumerate(accs):
                v = fn.assign(f"load {vt}, ptr {fn.gep('float', fn.gep('float', '%p', i), j * width)}, align 64")
                s = fn.assign(f"fadd {vt} {fn.assign(f'load {vt}, ptr {a}, align 64')}, {v}")
                fn.emit(f"store {vt} {s}, ptr {a}, align 64")
    _reduce(fn, vt, accs)
    fn = m.function(f"{_NAME}_fma", "float", [("float", "a"), ("i32", "n")])
    va = fn.splat("float", width, "%a")
    accs = []
    for j in range(_CHAINS):
        a = fn.alloca(vt, "acc")
        fn.emit(f"store {vt} {fn.splat('float', width, f'{float(j):e}')}, ptr {a}, align 64")
        accs.append(a)
    with fn.loop("0", "%n", hint="fma"):
        for a in accs:
            r = fn.assign(f"call {vt} @llvm.fmuladd.v{width}f32({vt} {fn.assign(f'load {vt}, ptr {a}, align 64')}, "
                          f"{vt} {va}, {vt} {va})")
            fn.emit(f"store {vt} {r}, ptr {a}, align 64")
    _reduce(fn, vt, accs)
    return m.text()


def _reduce(fn, vt: str, accs: list[str]) -> None:
    s = fn.assign(f"load {vt}, ptr {accs[0]}, align 64")
    for a in accs[1:]:
        s = fn.assign(f"fadd {vt} {s}, {fn.assign(f'load {vt}, ptr {a}, align 64')}")
    fn.ret(fn.assign(f"extractelement {vt} {s}, i32 0"), "float")


class Kernels:
    """The two kernels, JIT-compiled for this machine (its widest float vectors)."""

    def __init__(self, target: Target | None = None):
        from core.compiler.jit import JitLibrary

        target = target or Target.host()
        self.width = max(4, simd_floats({"target": target}))
        self._lib = JitLibrary(_ir(self.width), _NAME, target, api=("stream", "fma"))
        self.stream = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)(
            self._lib.address("stream"))
        self.fma = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_float, ctypes.c_int32)(self._lib.address("fma"))


def _best(call, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def read_bandwidth(nbytes: int, kernels: Kernels | None = None, repeat: int = 15, work: float = 2e8) -> float:
    """GB/s of one core reading an `nbytes` buffer again and again (it then sits in the cache level
    that holds it); best of `repeat` runs of about `work` bytes each."""
    k = kernels or Kernels()
    block = 8 * k.width
    n = max(block, nbytes // 4 // block * block)
    buf = np.zeros(n + 16, np.float32)
    p = buf.ctypes.data + (-buf.ctypes.data % 64)
    reps = max(1, int(work // (4 * n)))
    k.stream(p, n, 2)  # warm: bring the buffer into its cache level
    t = _best(lambda: k.stream(p, n, reps), repeat)
    return 4 * n * reps / t / 1e9


def fma_rate(kernels: Kernels | None = None, repeat: int = 15, rounds: int = 200_000) -> float:
    """GFLOP/s (2 per multiply-add) of float32 FMAs on one core, all in registers."""
    k = kernels or Kernels()
    t = _best(lambda: k.fma(1.0, rounds), repeat)
    return 2 * _CHAINS * k.width * rounds / t / 1e9


def floor_us(nbytes: int, flops: float, bandwidth_gbs: float, gflops: float) -> float:
    """Roofline time of one frame: max(bytes / bandwidth, FLOPs / FMA rate), microseconds."""
    return max(nbytes / (bandwidth_gbs * 1e3), flops / (gflops * 1e3))
