"""Stage 3b: export a compiled model as a folder a user builds on the device (ELL's wrap).

    export([featurizer, classifier], "out/", target=Target.preset("pi3"), module_name="kws")

Writes NAME.o, NAME.h, NAME_api.c, NAME_demo.c (audio -> probabilities modules), CMakeLists.txt,
NAME.py, categories.txt and README.md. Everything is compiled before anything is written; the
files then replace the folder's earlier export of NAME as one set (core.outputs: all old or all
new files, whatever kills the process, fsynced), and a file this export does not make (NAME_demo.c,
categories.txt) is removed. Other entries in the folder (a cmake build/ folder) are left alone.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.compiler import c_sources, export_files
from core.compiler.build import compile_ir
from core.compiler.lower import check_module_name, lower, module_metadata
from core.compiler.targets import Target
from core.errors import CompileError, KwsError
from core.graph.ir import Graph
from core.outputs import output_set


@dataclass(frozen=True)
class ExportResult:
    outdir: Path
    files: tuple[Path, ...]
    target: Target
    module_name: str
    demo: bool


def _is_audio_module(graphs: list[Graph]) -> bool:
    first = graphs[0]
    return len(graphs) >= 2 and (first.metadata.get("kind") == "featurizer" or bool(first.by_op("frame_buffer")))


def _check_writable(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CompileError(f"{outdir}: exists and is not a folder") from None
    except OSError as e:
        raise CompileError(f"{outdir}: cannot create the output folder: {e.strerror or e}") from None
    if not outdir.is_dir():
        raise CompileError(f"{outdir}: exists and is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kws-write-test-", dir=outdir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CompileError(f"{outdir}: the output folder is not writable: {e.strerror or e}") from None


def export(
    graphs: Graph | Sequence[Graph],
    outdir: str | os.PathLike,
    *,
    target: Target,
    module_name: str = "model",
    categories: list[str] | None = None,
    sources: list[str] | None = None,
    demo_clip: str | os.PathLike | None = None,
) -> ExportResult:
    """`demo_clip` (microcontroller targets): the wav embedded in the demo (default assets/demo.wav)."""
    name = check_module_name(module_name)
    gs = [graphs] if isinstance(graphs, Graph) else list(graphs)
    if not gs:
        raise CompileError("nothing to export: no graphs")
    out_size = gs[-1].output_size
    cats = list(categories) if categories else list(gs[-1].categories)
    if cats and len(cats) != out_size:
        raise CompileError(f"{len(cats)} categories but the model has {out_size} outputs")
    featurizer_only = gs[-1].metadata.get("kind") == "featurizer" or bool(gs[-1].by_op("frame_buffer"))
    labels = cats or ([] if featurizer_only else [str(i) for i in range(out_size)])
    extra = {
        "categories": labels,
        "category_count": len(labels),
        "target": {"triple": target.triple, "cpu": target.cpu, "features": target.features},
    }
    ir = lower(gs, name, metadata=extra, options={"target": target})
    obj = compile_ir(ir, target)  # compile first: a failure writes nothing
    meta = module_metadata(gs, name, extra)
    demo = _is_audio_module(gs)
    desc = f"{target.triple} {target.cpu} {target.features}".strip()
    if target.is_bare_metal:
        files = _mcu_files(name, gs, meta, labels, target, ir, obj, demo, demo_clip)
    else:
        files = _linux_files(name, meta, labels, target, obj, demo, desc, sources)
    out = Path(outdir)
    _check_writable(out)
    members = [*files, *(n for n in ("categories.txt", f"{name}_demo.c") if n not in files)]
    try:
        with output_set(out, members) as staged:
            for fname, data in files.items():
                try:
                    if isinstance(data, bytes):
                        staged.path(fname).write_bytes(data)
                    else:
                        staged.path(fname).write_text(data, encoding="utf-8")
                except OSError as e:
                    raise CompileError(f"{out}: cannot write {fname}: {e.strerror or e}") from None
    except CompileError:
        raise
    except KwsError as e:
        raise CompileError(str(e)) from None
    return ExportResult(out, tuple(out / f for f in files), target, name, demo)


def _linux_files(name, meta, labels, target, obj, demo, desc, sources) -> dict[str, str | bytes]:
    files = {
        f"{name}.o": obj,
        f"{name}.h": c_sources.header(name, meta, desc),
        f"{name}_api.c": c_sources.api_source(name, labels),
        "CMakeLists.txt": export_files.cmake(name, demo),
        f"{name}.py": export_files.python_wrapper(name, meta),
        "README.md": export_files.readme(name, meta, target, demo, list(sources or [])),
    }
    if labels:
        files["categories.txt"] = "".join(f"{c}\n" for c in labels)
    if demo:
        files[f"{name}_demo.c"] = c_sources.demo_source(name, meta)
    return files


def _mcu_files(name, gs, meta, labels, target, ir, obj, demo, demo_clip) -> dict[str, str | bytes]:
    from core.audio.wav import read_wav
    from core.compiler import export_mcu
    from core.compiler.targets import board_for
    from core.models import DEMO_WAV

    if not demo:
        raise CompileError(f"{target.name}: a microcontroller export needs a featurizer and a classifier "
                           "(its demo runs an embedded clip through both)")
    board = board_for(target)
    clip = Path(demo_clip or DEMO_WAV)
    samples, _ = read_wav(clip, int(meta.get("sample_rate") or 16000))
    ctx = context_size(ir, name)
    mem = {"model_flash": elf_alloc_bytes(obj)[0], "context": ctx}
    desc = f"{target.triple} {target.cpu} {target.features}".strip()
    files = {
        f"{name}.o": obj,
        f"{name}.h": export_mcu.header(name, meta, ctx, desc),
        f"{name}_api.c": export_mcu.api_source(name, labels),
        f"{name}_clip.h": export_mcu.clip_header(name, samples, clip.name),
        f"{name}_demo.c": export_mcu.demo_source(name),
        "startup.c": export_mcu.STARTUP,
        f"{name}.ld": export_mcu.linker_script(board),
        "Makefile": export_mcu.makefile(name, board),
        "README.md": export_mcu.readme(name, meta, target, board, clip.name, mem),
    }
    if labels:
        files["categories.txt"] = "".join(f"{c}\n" for c in labels)
    return files


def context_size(ir: str, name: str) -> int:
    """The bytes NAME_context_size() returns, read from the lowered IR."""
    m = re.search(rf"define i32 @{re.escape(name)}_context_size\(\) #0 {{\nentry:\n  ret i32 (\d+)", ir)
    if not m:
        raise CompileError(f"{name}: no context size in the generated IR (a compiler bug)")
    return int(m.group(1))


def elf_alloc_bytes(obj: bytes) -> tuple[int, int]:
    """(bytes of loaded sections with contents: code and constants, bytes of zero-filled ones) of a
    32- or 64-bit little-endian ELF object."""
    if obj[:4] != b"\x7fELF" or obj[5] != 1:
        raise CompileError("not a little-endian ELF object")
    wide = obj[4] == 2
    shoff = int.from_bytes(obj[0x28:0x30] if wide else obj[0x20:0x24], "little")
    entsize = int.from_bytes(obj[0x3A:0x3C] if wide else obj[0x2E:0x30], "little")
    count = int.from_bytes(obj[0x3C:0x3E] if wide else obj[0x30:0x32], "little")
    loaded = zero = 0
    for i in range(count):
        h = obj[shoff + i * entsize : shoff + (i + 1) * entsize]
        kind = int.from_bytes(h[4:8], "little")
        flags = int.from_bytes(h[8:16] if wide else h[8:12], "little")
        size = int.from_bytes(h[32:40] if wide else h[20:24], "little")
        if flags & 0x2:  # SHF_ALLOC
            if kind == 8:  # SHT_NOBITS
                zero += size
            else:
                loaded += size
    return loaded, zero
