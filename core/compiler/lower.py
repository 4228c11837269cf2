"""Stage 1: model graph(s) -> LLVM IR text. Pure and deterministic (golden-testable).

    ir = lower([featurizer, classifier], "kws")   # chained: audio hop in, probabilities out

The module exports, for module name NAME (all state lives in a caller-owned context block, so
several instances run at once; weights are read-only globals):

    int32_t NAME_context_size(void)                 bytes of context (allocate 64-byte aligned)
    void    NAME_reset(void* ctx)                    initial state (also call once after allocating)
    void    NAME_predict(void* ctx, const float* in, float* out)                 one frame
    void    NAME_predict_frames(void* ctx, const float* in, float* out, int32_t n)  n frames
    int32_t NAME_input_size(void), NAME_output_size(void)
    const char* NAME_metadata(void)                  JSON: sizes, sample rate, hop, categories

Every node lowers to an internal always-inline kernel whose buffers are separate `noalias`
pointers into the context (outputs, state, scratch), so the optimiser vectorises freely.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.compiler.emitter import Function, Module
from core.errors import CompileError, KwsError
from core.graph.ir import Graph, Node
from core.graph.shapes import infer_shapes

PAD = 16  # floats: output and gate blocks are padded to 64 bytes
ALIGN = 64
VERSION = 1

_C_KEYWORDS = set(
    """auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary bool true false NULL main""".split()
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_SIZE = {"float": 4, "double": 8, "i32": 4, "i64": 8, "i8": 1, "i16": 2}


def pad(n: int, to: int = PAD) -> int:
    return max(to, -(-int(n) // to) * to)


def check_module_name(name: str) -> str:
    """A module name becomes the prefix of C symbols and file names: a plain C identifier."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise CompileError(
            f"module name {name!r} is not a C identifier (letters, digits, underscore; "
            "not starting with a digit; at most 63 characters)"
        )
    if name in _C_KEYWORDS or keyword.iskeyword(name) or name.startswith("__"):
        raise CompileError(f"module name {name!r} is reserved in C or Python; choose another")
    return name


@dataclass
class Region:
    """A piece of the context block: an output, state or scratch buffer of one node."""

    name: str
    ty: str = "float"
    count: int = 1
    init: float | None = None  # reset value when not zero (all regions are zeroed by reset)
    offset: int = -1


@dataclass
class Kernel:
    """What an op's emit() sees: its function, node, shapes and buffer pointers."""

    fn: Function
    node: Node
    in_shapes: list[tuple]
    out_shape: tuple
    ins: list[str]
    out: str
    r: dict[str, str]
    options: dict = field(default_factory=dict)

    @property
    def m(self) -> Module:
        return self.fn.module

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shapes[0])) if self.in_shapes else 0

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    def size(self, i: int) -> int:
        return int(np.prod(self.in_shapes[i]))


class OpLowering:
    """Base class: an op's buffers (regions) and its kernel body."""

    # 'out': a fresh output region (padded); 'input0': the first input's buffer; else a region name
    out_alias: str = "out"
    emits: bool = True  # False: no code, the output is the first input (reshape, identity, ...)

    def regions(self, node: Node, in_shapes: list[tuple], out_shape: tuple) -> list[Region]:
        return []

    def emit(self, k: Kernel) -> None:
        raise NotImplementedError


LOWERINGS: dict[str, OpLowering] = {}


def lowering(*ops: str):
    def deco(cls):
        for o in ops:
            LOWERINGS[o] = cls()
        return cls

    return deco


def unsupported_ops(graph: Graph) -> list[Node]:
    _load_lowerings()
    return [n for n in graph.nodes if n.op not in LOWERINGS]


def supports(graph: Graph) -> bool:
    try:
        return not unsupported_ops(graph)
    except KwsError:
        return False


def _load_lowerings() -> None:
    from core.compiler import lower_dsp, lower_nd, lower_nn, lower_q8, lower_temporal  # noqa: F401  (registers ops)


# ------------------------------------------------------------------------------------------ driver
@dataclass
class _NodeInfo:
    node: Node
    lowering: OpLowering | None
    in_shapes: list[tuple]
    out_shape: tuple
    regions: list[Region]
    kernel: str | None = None


@dataclass
class Layout:
    """Byte offsets of every region in the context block."""

    size: int = 0
    inits: list[tuple[int, str, float]] = field(default_factory=list)

    def place(self, region: Region) -> None:
        region.offset = self.size
        self.size += -(-region.count * _SIZE[region.ty] // ALIGN) * ALIGN
        if region.init:
            for i in range(region.count):
                self.inits.append((region.offset + i * _SIZE[region.ty], region.ty, float(region.init)))


def _as_list(graphs) -> list[Graph]:
    if isinstance(graphs, Graph):
        return [graphs]
    out = list(graphs)
    if not out or not all(isinstance(g, Graph) for g in out):
        raise CompileError("lower() needs a graph or a non-empty sequence of graphs")
    return out


def module_metadata(graphs: Sequence[Graph], module_name: str, extra: dict | None = None) -> dict:
    """What NAME_metadata() returns (JSON): sizes, rates, stage kinds, categories."""
    gs = _as_list(graphs)
    first, last = gs[0], gs[-1]
    meta: dict = {
        "module": module_name,
        "version": VERSION,
        "input_size": first.input_size,
        "output_size": last.output_size,
        "stages": [g.metadata.get("kind", "model") for g in gs],
    }
    for g in gs:
        md = g.metadata
        fz = md.get("featurizer") or {}
        rate = md.get("sample_rate") or fz.get("sample_rate")
        if rate and "sample_rate" not in meta:
            meta["sample_rate"] = int(rate)
        if md.get("kind") == "featurizer" and "hop_length" not in meta:
            meta["hop_length"] = int(md.get("hop_length") or g.input_size)
    if last.categories:
        meta["categories"] = list(last.categories)
    if extra:
        meta.update(extra)
    return meta


def lower(
    graphs: Graph | Sequence[Graph],
    module_name: str = "model",
    *,
    metadata: dict | None = None,
    options: dict | None = None,
) -> str:
    """Graph(s) -> LLVM IR text. Several graphs are chained (each output feeds the next input)."""
    _load_lowerings()
    check_module_name(module_name)
    gs = _as_list(graphs)
    options = dict(options or {})
    stages = []
    for si, g in enumerate(gs):
        try:
            g.validate()
            shapes = infer_shapes(g)
        except KwsError as e:
            raise CompileError(f"cannot compile {_gname(g, si)}: {e}") from None
        for n in g.nodes:
            if n.op not in LOWERINGS:
                raise CompileError(f"{_gname(g, si)}: node {n.id!r}: op {n.op!r} is not supported by the compiler")
        stages.append((g, shapes))
    for si in range(1, len(gs)):
        a, b = gs[si - 1].output_size, gs[si].input_size
        if a != b:
            raise CompileError(f"{_gname(gs[si], si)} expects {b} inputs but {_gname(gs[si - 1], si - 1)} emits {a}")

    meta = module_metadata(gs, module_name, metadata)
    m = Module(module_name)
    layout = Layout()
    infos: list[list[_NodeInfo]] = []
    for si, (g, shapes) in enumerate(stages):
        row = []
        for n in g.nodes:
            low = LOWERINGS[n.op]
            ins = [shapes[i] for i in n.inputs]
            try:
                regs = low.regions(n, ins, shapes[n.id])
            except (KeyError, ValueError, TypeError) as e:
                raise CompileError(
                    f"{_gname(g, si)}: node {n.id!r} ({n.op}): bad attributes or parameters: {e}"
                ) from None
            if low.out_alias == "out":
                regs = [Region("out", "float", pad(int(np.prod(shapes[n.id]))))] + regs
            for r in regs:
                layout.place(r)
            row.append(_NodeInfo(n, low, ins, shapes[n.id], regs))
        infos.append(row)

    # kernels, one internal always-inline function per computing node
    for si, row in enumerate(infos):
        for ni, info in enumerate(row):
            if not info.lowering.emits:
                continue
            info.kernel = _emit_kernel(m, si, ni, info, options)

    step = _emit_step(m, module_name, infos)
    _emit_api(m, module_name, step, layout, gs, meta)
    return m.text()


def _gname(g: Graph, i: int) -> str:
    kind = g.metadata.get("kind")
    src = (g.metadata.get("source") or {}).get("file") if isinstance(g.metadata.get("source"), dict) else None
    return f"{kind or 'graph'} {src or i}"


def _emit_kernel(m: Module, si: int, ni: int, info: _NodeInfo, options: dict) -> str:
    node, low = info.node, info.lowering
    name = m.unique(f"k{si}_{ni}_{node.op}")
    params = [("ptr noalias", f"in{j}") for j in range(len(node.inputs))]
    regs = {r.name: r for r in info.regions}
    if low.out_alias == "out":
        params.append(("ptr noalias", "out"))
    params += [("ptr noalias", f"r_{r.name}") for r in info.regions if r.name != "out"]
    fn = m.function(name, "void", params, internal=True, inline=True)
    ptrs = {r: f"%r_{r}" for r in regs if r != "out"}
    if low.out_alias == "out":
        out = "%out"
    elif low.out_alias == "input0":
        out = "%in0"
    else:
        out = ptrs[low.out_alias]
    k = Kernel(
        fn,
        node,
        info.in_shapes,
        info.out_shape,
        [f"%in{j}" for j in range(len(node.inputs))],
        out,
        ptrs,
        options,
    )
    try:
        low.emit(k)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise CompileError(f"node {node.id!r} ({node.op}): bad attributes or parameters: {e}") from None
    fn.ret()
    return name


def _emit_step(m: Module, name: str, infos: list[list[_NodeInfo]]) -> str:
    fn = m.function(
        m.unique(f"{name}_step"),
        "void",
        [("ptr noalias", "ctx"), ("ptr noalias readonly", "in"), ("ptr noalias", "out")],
        internal=True,
    )
    buf: dict[tuple[int, str], str] = {}
    prev_out: str | None = None
    for si, row in enumerate(infos):
        last_stage = si == len(infos) - 1
        for info in row:
            n = info.node
            regs = {r.name: fn.byte_gep("%ctx", r.offset, "b") for r in info.regions}
            ins = [buf[(si, i)] for i in n.inputs]
            if n.op == "input":
                buf[(si, n.id)] = "%in" if prev_out is None else prev_out
                continue
            if n.op == "constant":
                buf[(si, n.id)] = m.const_array(f"c_{n.id}", np.asarray(n.params["value"], np.float32).reshape(-1))
                continue
            if n.op == "output":
                if last_stage:  # the module output: copy into the caller's buffer
                    fn.memcpy("%out", ins[0], 4 * int(np.prod(info.out_shape)))
                else:  # feeds the next stage's input
                    buf[(si, n.id)] = prev_out = ins[0]
                continue
            if not info.lowering.emits:  # identity, reshape: the same buffer
                buf[(si, n.id)] = ins[0]
                continue
            low = info.lowering
            args = [("ptr", p) for p in ins]
            if low.out_alias == "out":
                args.append(("ptr", regs["out"]))
            args += [("ptr", regs[r.name]) for r in info.regions if r.name != "out"]
            fn.call("void", f"@{info.kernel}", args)
            if low.out_alias == "out":
                buf[(si, n.id)] = regs["out"]
            elif low.out_alias == "input0":
                buf[(si, n.id)] = ins[0]
            else:
                buf[(si, n.id)] = regs[low.out_alias]
    fn.ret()
    return fn.name


def _emit_api(m: Module, name: str, step: str, layout: Layout, gs: list[Graph], meta: dict) -> None:
    size = -(-max(layout.size, ALIGN) // ALIGN) * ALIGN
    in_size, out_size = gs[0].input_size, gs[-1].output_size

    fn = m.function(f"{name}_context_size", "i32", [])
    fn.ret(str(size), "i32")
    fn = m.function(f"{name}_input_size", "i32", [])
    fn.ret(str(in_size), "i32")
    fn = m.function(f"{name}_output_size", "i32", [])
    fn.ret(str(out_size), "i32")
    meta_g = m.cstring(f"{name}_metadata_json", json.dumps(meta, sort_keys=True, ensure_ascii=False))
    fn = m.function(f"{name}_metadata", "ptr", [])
    fn.ret(meta_g, "ptr")

    fn = m.function(f"{name}_reset", "void", [("ptr", "ctx")])
    fn.memset0("%ctx", str(size))
    for off, ty, val in layout.inits:
        from core.compiler.emitter import lit

        fn.store(ty, lit(val, ty) if ty in ("float", "double") else str(int(val)), fn.byte_gep("%ctx", off))
    fn.ret()

    fn = m.function(f"{name}_predict", "void", [("ptr", "ctx"), ("ptr", "in"), ("ptr", "out")])
    fn.call("void", f"@{step}", [("ptr", "%ctx"), ("ptr", "%in"), ("ptr", "%out")])
    fn.ret()

    fn = m.function(f"{name}_predict_frames", "void", [("ptr", "ctx"), ("ptr", "in"), ("ptr", "out"), ("i32", "n")])
    with fn.loop("0", "%n", hint="frames") as t:
        xi = fn.iop("mul", t, str(in_size))
        yi = fn.iop("mul", t, str(out_size))
        fn.call(
            "void",
            f"@{step}",
            [("ptr", "%ctx"), ("ptr", fn.gep("float", "%in", xi)), ("ptr", fn.gep("float", "%out", yi))],
        )
    fn.ret()
