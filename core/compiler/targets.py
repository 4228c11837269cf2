"""Compile targets as data: a frozen `Target(triple, cpu, features, opt_level)` and named presets.

    Target.preset("pi3")                       # armv7 hard float, Cortex-A53, NEON
    Target.host()                              # this machine: process triple, host cpu + features
                                               # (KWS_HOST_CPU=x86-64-v2 builds for a baseline CPU)
    resolve_target("custom", triple=..., cpu=..., features=...)

Objects are position independent (PIC), so they link into shared libraries; bare-metal (microcontroller)
objects are static, linked at fixed addresses into one image.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from core.errors import CompileError

_TRIPLE = re.compile(r"^[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+){1,4}$")
_FEATURE = re.compile(r"^[+-][A-Za-z0-9_.-]+$")

# what the x86-64 micro-architecture levels imply (the psABI's levels; LLVM's cpus of those names)
_X86_V2 = ("+cx16", "+sse3", "+ssse3", "+sse4.1", "+sse4.2", "+popcnt", "+sahf")
_X86_V3 = _X86_V2 + ("+avx", "+avx2", "+fma", "+f16c", "+bmi", "+bmi2", "+lzcnt", "+movbe")
_X86_V4 = _X86_V3 + ("+avx512f", "+avx512bw", "+avx512cd", "+avx512dq", "+avx512vl")
CPU_LEVEL_FEATURES = {"x86-64-v2": _X86_V2, "x86-64-v3": _X86_V3, "x86-64-v4": _X86_V4}


@dataclass(frozen=True)
class Target:
    triple: str
    cpu: str = "generic"
    features: str = ""
    opt_level: int = 3
    name: str = "custom"

    def __post_init__(self):
        if not isinstance(self.triple, str) or not _TRIPLE.match(self.triple):
            raise ValueError(f"target triple must look like arch-vendor-os[-env], got {self.triple!r}")
        if not isinstance(self.cpu, str) or not re.match(r"^[A-Za-z0-9_.+-]*$", self.cpu):
            raise ValueError(f"target cpu must be a CPU name like cortex-a53, got {self.cpu!r}")
        feats = [f for f in self.features.split(",") if f] if isinstance(self.features, str) else None
        if feats is None or any(not _FEATURE.match(f) for f in feats):
            raise ValueError(f"target features must be a comma list like +neon,+vfp4, got {self.features!r}")
        if self.opt_level not in (0, 1, 2, 3):
            raise ValueError(f"target opt_level must be 0..3, got {self.opt_level!r}")

    # ---------------------------------------------------------------- facts
    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]

    @property
    def feature_set(self) -> frozenset[str]:
        """The "+feature"s the code may use: those a CPU level (x86-64-v3, ...) implies, then the
        features string in order (a "-feature" there removes one)."""
        out = set(CPU_LEVEL_FEATURES.get(self.cpu, ()))
        for f in (f for f in self.features.split(",") if f):
            if f.startswith("-"):
                out.discard("+" + f[1:])
            else:
                out.add(f)
        return frozenset(out)

    @property
    def is_arm32(self) -> bool:
        return self.arch.startswith(("arm", "thumb"))

    @property
    def is_aarch64(self) -> bool:
        return self.arch in ("aarch64", "arm64")

    @property
    def is_bare_metal(self) -> bool:
        """A microcontroller (OS "none"): static code, no libc beyond newlib, no files."""
        return "none" in self.triple.split("-")[1:3]

    @property
    def hard_float(self) -> bool:
        return self.triple.endswith("hf") or not self.is_arm32

    @property
    def has_simd(self) -> bool:
        """Whether forced loop vectorisation can work (32-bit ARM only with +neon)."""
        return not self.is_arm32 or "+neon" in self.features.split(",")

    @property
    def elf_machine(self) -> int | None:
        """The ELF e_machine value objects for this target carry (None when not known here)."""
        if self.is_arm32:
            return 40  # EM_ARM
        if self.is_aarch64:
            return 183  # EM_AARCH64
        return {"x86_64": 62, "i386": 3, "i686": 3, "riscv64": 243}.get(self.arch)

    @property
    def gcc_prefix(self) -> str | None:
        """The Debian cross compiler prefix that links objects for this target, if any."""
        if self.is_bare_metal and self.is_arm32:
            return "arm-none-eabi-"
        if self.is_arm32:
            return "arm-linux-gnueabihf-" if self.hard_float else "arm-linux-gnueabi-"
        if self.is_aarch64:
            return "aarch64-linux-gnu-"
        return None

    @property
    def qemu(self) -> str | None:
        if self.is_bare_metal and self.is_arm32:
            return "qemu-system-arm"
        if self.is_arm32:
            return "qemu-arm"
        if self.is_aarch64:
            return "qemu-aarch64"
        return None

    def is_native(self) -> bool:
        from core.compiler.build import host_triple

        return _arch_key(self.triple) == _arch_key(host_triple())

    def with_opt_level(self, opt_level: int) -> Target:
        return replace(self, opt_level=opt_level)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def host(cls, opt_level: int = 3) -> Target:
        """This machine. The environment variable KWS_HOST_CPU (e.g. x86-64-v2, x86-64-v3) builds
        the host code for that CPU level instead of this CPU's own features: code that runs on any
        machine of that level, and a way to check results across instruction sets."""
        import os

        from core.compiler.build import host_cpu, host_features, host_triple

        cpu = os.environ.get("KWS_HOST_CPU", "").strip()
        if cpu:
            return cls(host_triple(), cpu, "", opt_level, "host")
        return cls(host_triple(), host_cpu(), host_features(), opt_level, "host")

    @classmethod
    def preset(cls, name: str) -> Target:
        key = name.lower()
        if key == "host":
            return cls.host()
        if key not in PRESETS:
            raise CompileError(
                f"unknown target {name!r}: choose one of {', '.join(preset_names())} "
                "or give --triple (with --cpu and --features)"
            )
        return PRESETS[key]


def _arch_key(triple: str) -> str:
    arch = triple.split("-", 1)[0]
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


PRESETS: dict[str, Target] = {
    # Raspberry Pi 2/3/4 running 32-bit Raspberry Pi OS: armv7 hard float, NEON.
    "pi3": Target("armv7-unknown-linux-gnueabihf", "cortex-a53", "+neon,+vfp4", 3, "pi3"),
    # Raspberry Pi Zero / 1: armv6 with VFPv2, hard float, no NEON.
    "pi0": Target("armv6-unknown-linux-gnueabihf", "arm1176jzf-s", "+vfp2,-neon", 3, "pi0"),
    # Raspberry Pi 3/4 running a 64-bit OS.
    "pi3_64": Target("aarch64-unknown-linux-gnu", "cortex-a53", "+neon,+fp-armv8", 3, "pi3_64"),
    "aarch64": Target("aarch64-unknown-linux-gnu", "cortex-a53", "+neon,+fp-armv8", 3, "aarch64"),
    # Microcontrollers (bare metal, exported with a static C API, core.compiler.export_mcu):
    # Cortex-M4 with the FPv4 single-precision FPU, hard-float ABI (the Azure IoT DevKit's STM32F412).
    "cortex-m4": Target("thumbv7em-unknown-none-eabihf", "cortex-m4", "", 3, "cortex-m4"),
    # Cortex-M0/M0+: ARMv6-M, no FPU (soft float).
    "cortex-m0": Target("thumbv6m-unknown-none-eabi", "cortex-m0", "", 3, "cortex-m0"),
}


@dataclass(frozen=True)
class Board:
    """A microcontroller part a preset stands for (its memory budget) and the qemu board that runs
    its code (mps2-an385 is a Cortex-M3: it runs ARMv6-M code as a Cortex-M0 would)."""

    flash_bytes: int
    ram_bytes: int
    qemu_machine: str
    gcc_flags: str
    part: str


BOARDS: dict[str, Board] = {
    "cortex-m4": Board(1 << 20, 256 << 10, "mps2-an386", "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16",
                       "STM32F412 (Azure IoT DevKit): 1 MiB flash, 256 KiB RAM"),
    "cortex-m0": Board(2 << 20, 264 << 10, "mps2-an385", "-mcpu=cortex-m0 -mthumb -mfloat-abi=soft",
                       "RP2040 (Cortex-M0+, no FPU): 2 MiB flash, 264 KiB RAM"),
}


def board_for(target: Target) -> Board:
    """The board of a bare-metal target: by preset name, else by the triple's architecture."""
    if target.name in BOARDS:
        return BOARDS[target.name]
    return BOARDS["cortex-m0" if target.arch.startswith("thumbv6") else "cortex-m4"]


def preset_names() -> list[str]:
    return ["host", *PRESETS]


def resolve_target(
    name: str | None = "host",
    *,
    triple: str | None = None,
    cpu: str | None = None,
    features: str | None = None,
    opt_level: int | None = None,
) -> Target:
    """A preset by name, or a custom target from --triple/--cpu/--features (which also override a
    preset's fields). Bad values raise CompileError naming them."""
    try:
        if triple:
            base = Target(triple, cpu or "generic", features or "", 3 if opt_level is None else opt_level, "custom")
            _check_llvm_knows(base)
            return base
        t = Target.preset(name or "host")
        if cpu is not None or features is not None or opt_level is not None:
            t = replace(
                t,
                cpu=t.cpu if cpu is None else cpu,
                features=t.features if features is None else features,
                opt_level=t.opt_level if opt_level is None else opt_level,
            )
        return t
    except ValueError as e:
        raise CompileError(str(e)) from None


def _check_llvm_knows(t: Target) -> None:
    from core.compiler.build import llvm_target

    llvm_target(t)  # raises CompileError for an unknown triple
