"""Stage 2: LLVM IR text -> optimised object file bytes for a target. Cached by (IR hash, target).

llvmlite >= 0.45: no llvm.initialize(); targets and asm printers are initialised once; the new
pass manager optimises at the target's speed level.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache

from core.compiler.targets import Target
from core.errors import CompileError

_LOCK = threading.Lock()
# LLVM work (parsing into the global context, optimising, emitting, JIT linking) is serialised:
# the GUI compiles on worker threads while the live view may build a model on another.
LLVM_LOCK = threading.RLock()
_CACHE: OrderedDict[tuple[str, Target], bytes] = OrderedDict()
_CACHE_MAX = 32


@lru_cache(maxsize=1)
def _llvm():
    try:
        import llvmlite.binding as llvm
    except ImportError as e:  # pragma: no cover - llvmlite is a dependency
        raise CompileError(f"the compiler needs llvmlite: {e}") from None
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()
    return llvm


def host_triple() -> str:
    return _llvm().get_process_triple()


def host_cpu() -> str:
    return _llvm().get_host_cpu_name()


def host_features() -> str:
    return _llvm().get_host_cpu_features().flatten()


def llvm_target(target: Target):
    llvm = _llvm()
    try:
        return llvm.Target.from_triple(target.triple)
    except RuntimeError as e:
        raise CompileError(f"unknown target triple {target.triple!r}: {str(e).strip()}") from None


def target_machine(target: Target, jit: bool = False):
    t = llvm_target(target)
    try:
        return t.create_target_machine(
            cpu=target.cpu,
            features=target.features,
            opt=target.opt_level,
            reloc="static" if target.is_bare_metal else "pic",  # a microcontroller image is linked at fixed addresses
            codemodel="jitdefault" if jit else "default",
            jit=jit,
        )
    except RuntimeError as e:
        raise CompileError(f"cannot create a target machine for {target}: {e}") from None


def ir_hash(ir: str) -> str:
    return hashlib.sha256(ir.encode("utf-8")).hexdigest()


def optimise(ir: str, target: Target):
    """Parse, verify and optimise: (llvm module, target machine)."""
    llvm = _llvm()
    if not target.has_simd:  # forced vectorisation would fail (with a warning) on every hinted loop
        ir = ir.replace('!"llvm.loop.vectorize.enable", i1 true', '!"llvm.loop.vectorize.enable", i1 false')
    try:
        mod = llvm.parse_assembly(ir)
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"the generated LLVM IR does not verify (a compiler bug): {str(e).strip()[:2000]}") from None
    tm = target_machine(target)
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    if target.opt_level > 0:
        pto = llvm.create_pipeline_tuning_options(speed_level=target.opt_level)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    return mod, tm


def compile_ir(ir: str, target: Target) -> bytes:
    """Object file bytes (ELF, PIC) for `target`; cached in memory by (IR hash, target)."""
    key = (ir_hash(ir), target)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    with LLVM_LOCK:
        mod, tm = optimise(ir, target)
        try:
            obj = bytes(tm.emit_object(mod))
        except RuntimeError as e:
            raise CompileError(f"LLVM could not emit code for {target.triple} ({target.cpu}): {e}") from None
    obj = _mark_float_abi(obj, target)
    with _LOCK:
        _CACHE[key] = obj
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return obj


EF_ARM_ABI_FLOAT_HARD = 0x400
EF_ARM_ABI_FLOAT_SOFT = 0x200


def _mark_float_abi(obj: bytes, target: Target) -> bytes:
    """Set the EABI float-ABI flag in a 32-bit ARM object's ELF header, as GCC and clang do.

    The code already follows the triple's ABI and .ARM.attributes says so (Tag_ABI_VFP_args),
    but LLVM leaves e_flags at plain EABI5 when the ABI comes from the triple alone.
    """
    if not target.is_arm32 or obj[:4] != b"\x7fELF" or obj[4] != 1:
        return obj
    flags = int.from_bytes(obj[36:40], "little")
    flags |= EF_ARM_ABI_FLOAT_HARD if target.hard_float else EF_ARM_ABI_FLOAT_SOFT
    return obj[:36] + flags.to_bytes(4, "little") + obj[40:]


def assembly(ir: str, target: Target) -> str:
    """Optimised assembly text, for inspection (are the loops vectorised?)."""
    with LLVM_LOCK:
        mod, tm = optimise(ir, target)
        return tm.emit_assembly(mod)


def optimised_ir(ir: str, target: Target) -> str:
    with LLVM_LOCK:
        mod, _ = optimise(ir, target)
        return str(mod)
