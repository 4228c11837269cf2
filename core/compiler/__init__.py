"""The compiler: model graph(s) -> LLVM IR -> native code, on this machine (JIT) or exported as a
folder to build on a device (Raspberry Pi).

    ir = lower([featurizer, classifier], "kws")      # pure: IR text
    obj = compile_ir(ir, Target.preset("pi3"))       # object bytes, cached by (IR hash, target)
    model = CompiledModel(classifier)                # host JIT: step / run / reset
    export(featurizer, classifier, "out/", target=Target.preset("pi3"), module_name="kws")
"""

from core.compiler.build import compile_ir
from core.compiler.lower import check_module_name, lower, supports, unsupported_ops
from core.compiler.targets import PRESETS, Target, preset_names, resolve_target

__all__ = [
    "PRESETS",
    "Target",
    "check_module_name",
    "compile_ir",
    "lower",
    "preset_names",
    "resolve_target",
    "supports",
    "unsupported_ops",
    "CompiledModel",
    "export",
]


def __getattr__(name):
    if name == "CompiledModel":
        from core.compiler.runtime import CompiledModel

        return CompiledModel
    if name == "export":
        from core.compiler.export import export

        return export
    raise AttributeError(name)
