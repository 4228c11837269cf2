"""Stage 3a: object bytes -> callable code in this process (LLVM's ORC LLJIT, via llvmlite).

    lib = jit(ir, "kws")          # JitLibrary: function addresses of NAME_* symbols
    lib.address("kws_predict")

Libraries are shared by (IR hash, host target) while in use: each user allocates its own context,
so any number of model instances run at once on the same code. memcpy/memset resolve from the
process.
"""

from __future__ import annotations

import threading
import weakref

from core.compiler.build import LLVM_LOCK, _llvm, compile_ir, ir_hash, target_machine
from core.compiler.targets import Target
from core.errors import CompileError

API = ("context_size", "reset", "predict", "predict_frames", "input_size", "output_size", "metadata")

_LOCK = threading.Lock()
# shared while in use: a library lives as long as a CompiledModel holds it (then the object bytes
# stay in build's cache, so building it again is only a link)
_LIBS: weakref.WeakValueDictionary[tuple[str, Target], JitLibrary] = weakref.WeakValueDictionary()


class JitLibrary:
    def __init__(self, ir: str, module_name: str, target: Target, api: tuple[str, ...] = API):
        llvm = _llvm()
        self.module_name = module_name
        self.target = target
        self.object = compile_ir(ir, target)
        with LLVM_LOCK:
            tm = target_machine(target, jit=True)
            try:
                self._jit = llvm.create_lljit_compiler(tm)
                builder = llvm.JITLibraryBuilder().add_object_img(self.object).add_current_process()
                for fn in api:
                    builder.export_symbol(f"{module_name}_{fn}")
                self._tracker = builder.link(self._jit, f"{module_name}_{ir_hash(ir)[:16]}")
                self._addresses = {fn: self._tracker[f"{module_name}_{fn}"] for fn in api}
            except RuntimeError as e:
                raise CompileError(f"the JIT could not load module {module_name!r}: {e}") from None

    def address(self, fn: str) -> int:
        return self._addresses[fn]


def jit(ir: str, module_name: str, target: Target | None = None) -> JitLibrary:
    target = target or Target.host()
    if not target.is_native():
        raise CompileError(
            f"cannot run code for {target.triple} on this {Target.host().triple} machine; export it instead"
        )
    key = (ir_hash(ir), target)
    with _LOCK:
        lib = _LIBS.get(key)
        if lib is None:
            lib = JitLibrary(ir, module_name, target)
            _LIBS[key] = lib
        return lib
