"""Compile a featurizer and a classifier (or one model alone, as ELL's wrap does) to native code
for this machine or a Raspberry Pi, and export a folder to build on the device: the object file,
a C header, CMakeLists.txt, a demo program, a Python wrapper, categories and a README.

  kws compile featurizer.ell classifier.ell --target pi3 --module-name kws --outdir kws_pi3
  kws compile classifier.kwm --target host --module-name clf --outdir clf_host
  kws compile f.kwm c.kwm --triple armv7-unknown-linux-gnueabihf --cpu cortex-a72 --features +neon
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from core import models
from core.errors import CompileError


def add_arguments(p):
    from core.compiler.targets import preset_names

    p.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="FEATURIZER [CLASSIFIER] (.kwm, .ell or .onnx); two are chained into one module",
    )
    p.add_argument(
        "--target", default="host", help=f"target preset: {', '.join(preset_names())} (default host)"
    )
    p.add_argument("--triple", help="a custom LLVM target triple (overrides --target)")
    p.add_argument("--cpu", help="target CPU name (e.g. cortex-a72)")
    p.add_argument("--features", help="target features (e.g. +neon,+vfp4)")
    p.add_argument("--opt-level", type=int, choices=(0, 1, 2, 3), help="optimisation level (default 3)")
    p.add_argument(
        "--module-name", "-n", default="model", help="C identifier prefixing the API (default model)"
    )
    p.add_argument("-o", "--output", "--outdir", dest="outdir", metavar="OUTDIR",
                   help="output folder (default: ./MODULE_NAME)")
    p.add_argument("--categories", "-cat", metavar="T", help="categories file, one label per line")
    p.add_argument("--emit-ir", action="store_true", help="also write the LLVM IR (MODULE_NAME.ll)")
    p.add_argument("--demo-clip", metavar="WAV",
                   help="microcontroller targets: the clip embedded in the demo (default: assets/demo.wav)")


def _categories(args, graphs) -> list[str] | None:
    if args.categories:
        return models.load_categories(args.categories)
    if graphs[-1].categories:
        return None  # the model carries them
    beside = Path(args.models[-1]).resolve().parent / "categories.txt"
    if beside.is_file():
        cats = models.load_categories(beside)
        if len(cats) == graphs[-1].output_size:
            print(f"categories: {beside}", file=sys.stderr)
            return cats
    return None


def main(args) -> int:
    from core.compiler.export import export
    from core.compiler.lower import check_module_name, lower
    from core.compiler.targets import resolve_target

    name = check_module_name(args.module_name)
    target = resolve_target(
        args.target, triple=args.triple, cpu=args.cpu, features=args.features, opt_level=args.opt_level
    )
    if len(args.models) > 2:
        raise CompileError("give one model, or a featurizer and a classifier")
    graphs = [models.load_model(m) for m in args.models]
    outdir = Path(args.outdir or name)
    cats = _categories(args, graphs)
    t0 = time.perf_counter()
    print(
        f"compiling {' + '.join(map(str, args.models))} for {target.name} ({target.triple}, {target.cpu})",
        file=sys.stderr,
    )
    result = export(
        graphs,
        outdir,
        target=target,
        module_name=name,
        categories=cats,
        sources=[Path(m).name for m in args.models],
        demo_clip=args.demo_clip,
    )
    if args.emit_ir:
        from core.fsutil import write_text_atomic

        write_text_atomic(outdir / f"{name}.ll", lower(graphs, name, options={"target": target}))
    print(f"wrote {outdir}/ ({', '.join(p.name for p in result.files)}) in {time.perf_counter() - t0:.1f} s")
    if target.is_bare_metal:
        _print_memory(outdir, target, name)
        return 0
    print(f"build: cmake -S {outdir} -B {outdir}/build && cmake --build {outdir}/build (see README.md)")
    return 0


def _print_memory(outdir: Path, target, name: str) -> None:
    """A microcontroller image: build it and print its flash and RAM use against the part's."""
    import shutil

    from core.compiler.targets import board_for
    from core.compiler.verify import build_export, memory_use

    print(f"part: {board_for(target).part}")
    if shutil.which("arm-none-eabi-gcc") is None:
        print("arm-none-eabi-gcc is not installed: build with make in the folder to see flash and RAM use")
        return
    try:
        mem = memory_use(build_export(outdir, target, name), target)
    except CompileError as e:  # most often: the image does not fit the part's memory (the link says by how much)
        print(f"the demo image does not build: {e}")
        raise CompileError(f"{outdir}: the {target.name} image does not build or fit; see above") from None
    print(f"{name}_demo.elf (arm-none-eabi-size): text {mem.text}, data {mem.data}, bss {mem.bss} bytes: {mem.line()}")
    print(f"run: make -C {outdir} run (qemu-system-arm -M {board_for(target).qemu_machine}, semihosting)")
