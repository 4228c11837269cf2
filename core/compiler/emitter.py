"""A small LLVM IR text builder: module globals, functions, SSA temporaries, blocks and loops.

Values are plain strings (`%t12`, `0x3FF0000000000000`, `@w3`); the caller knows their types.
Float32 arithmetic in vectorisable loops carries `FAST` flags (contraction to FMA, no signed
zeros, reciprocals; never nnan/ninf, so NaN and infinity still behave); reduction sums also allow
reassociation (`FAST_REDUCE`), which they need to vectorise; elsewhere reassociation is left out
because it measurably loosens parity with the reference on recurrent models; loops that should
vectorise carry an `llvm.loop.vectorize.enable` hint, which ARM needs because NEON is not IEEE.
Indices are i32 so the same IR suits 32- and 64-bit targets.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Iterator

import numpy as np

FAST = "nsz arcp contract"
FAST_REDUCE = "reassoc nsz arcp contract"  # only on reduction sums, which need reassociation to vectorise


def f32(v: float) -> str:
    """An IR float literal (LLVM writes floats as the hex of the equal double)."""
    d = float(np.float32(v))
    return f"0x{struct.unpack('<Q', struct.pack('<d', d))[0]:016X}"


def f64(v: float) -> str:
    return f"0x{struct.unpack('<Q', struct.pack('<d', float(v)))[0]:016X}"


def lit(v: float, ty: str) -> str:
    return f32(v) if ty == "float" else f64(v)


def _array_body(values: np.ndarray, ty: str) -> str:
    if ty == "float":
        bits = np.ascontiguousarray(values, dtype=np.float32).astype(np.float64).view(np.uint64)
        return ", ".join([f"float 0x{b:016X}" for b in bits.tolist()])
    if ty == "double":
        bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
        return ", ".join([f"double 0x{b:016X}" for b in bits.tolist()])
    if ty == "half":
        bits = np.ascontiguousarray(values, dtype=np.float16).view(np.uint16)
        return ", ".join([f"half 0xH{b:04X}" for b in bits.tolist()])
    if ty in ("i32", "i64", "i8"):
        return ", ".join(f"{ty} {int(v)}" for v in np.asarray(values).reshape(-1).tolist())
    raise ValueError(ty)


def c_string_literal(text: str) -> tuple[str, int]:
    """LLVM c"..." body (NUL terminated) and its byte length."""
    data = text.encode("utf-8") + b"\0"
    out = []
    for b in data:
        ch = chr(b)
        if 32 <= b < 127 and ch not in '"\\':
            out.append(ch)
        else:
            out.append(f"\\{b:02X}")
    return "".join(out), len(data)


class Module:
    def __init__(self, name: str = "kws"):
        self.name = name
        self.globals: list[str] = []
        self.decls: dict[str, str] = {}
        self.functions: list[Function] = []
        self.metadata: list[str] = []
        self._const_cache: dict[bytes, str] = {}
        self._names: set[str] = set()
        self._md = 0
        self._vec_md: str | None = None

    def unique(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in hint) or "g"
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}.{i}", i + 1
        self._names.add(name)
        return name

    def const_array(self, hint: str, values, ty: str = "float") -> str:
        """A read-only global array (64-byte aligned), shared between equal contents."""
        arr = np.asarray(values)
        dtypes = {"float": np.float32, "half": np.float16, "double": np.float64, "i32": np.int32, "i8": np.int8,
                  "i64": np.int64}
        arr = arr.astype(dtypes[ty]).reshape(-1)
        if arr.size == 0:
            arr = np.zeros(1, arr.dtype)
        key = ty.encode() + hashlib.sha256(arr.tobytes()).digest()
        if key in self._const_cache:
            return self._const_cache[key]
        name = "@" + self.unique(hint)
        self.globals.append(
            f"{name} = internal unnamed_addr constant [{arr.size} x {ty}] [{_array_body(arr, ty)}], align 64"
        )
        self._const_cache[key] = name
        return name

    def cstring(self, hint: str, text: str) -> str:
        body, n = c_string_literal(text)
        name = "@" + self.unique(hint)
        self.globals.append(f'{name} = internal unnamed_addr constant [{n} x i8] c"{body}", align 1')
        return name

    def declare(self, name: str, line: str) -> None:
        self.decls[name] = line

    def vectorize_md(self) -> str:
        """A fresh distinct loop id carrying the vectorize-enable hint."""
        if self._vec_md is None:
            self._vec_md = f"!{self._next_md()}"
            self.metadata.append(f'{self._vec_md} = !{{!"llvm.loop.vectorize.enable", i1 true}}')
        n = f"!{self._next_md()}"
        self.metadata.append(f"{n} = distinct !{{{n}, {self._vec_md}}}")
        return n

    def _next_md(self) -> int:
        self._md += 1
        return self._md - 1

    def function(
        self,
        name: str,
        ret: str,
        params: list[tuple[str, str]],
        *,
        internal: bool = False,
        inline: bool = False,
    ) -> Function:
        fn = Function(self, name, ret, params, internal=internal, inline=inline)
        self.functions.append(fn)
        return fn

    def text(self) -> str:
        parts = [f"; ModuleID = '{self.name}'", f'source_filename = "{self.name}"', ""]
        parts += self.globals + [""]
        parts += [self.decls[k] for k in sorted(self.decls)] + [""]
        for fn in self.functions:
            parts.append(fn.text())
        parts.append("attributes #0 = { nounwind }")
        parts.append("attributes #1 = { nounwind alwaysinline }")
        parts += self.metadata
        return "\n".join(parts) + "\n"


class Function:
    def __init__(
        self,
        module: Module,
        name: str,
        ret: str,
        params: list[tuple[str, str]],
        *,
        internal: bool,
        inline: bool,
    ):
        self.module, self.name, self.ret_ty = module, name, ret
        self.params = params  # (type with attributes, name without %)
        self.internal, self.inline = internal, inline
        self.lines: list[str] = []
        self._tmp = 0
        self._labels: set[str] = set()
        self.block_label = "entry"
        self._labels.add("entry")
        self.lines.append("entry:")

    # ------------------------------------------------------------- names
    def tmp(self, hint: str = "t") -> str:
        self._tmp += 1
        return f"%{hint}{self._tmp}"

    def label(self, hint: str) -> str:
        i = 0
        name = hint
        while name in self._labels:
            i += 1
            name = f"{hint}{i}"
        self._labels.add(name)
        return name

    def emit(self, line: str) -> None:
        self.lines.append("  " + line)

    def assign(self, expr: str, hint: str = "t") -> str:
        v = self.tmp(hint)
        self.emit(f"{v} = {expr}")
        return v

    def block(self, label: str) -> None:
        self.lines.append(f"{label}:")
        self.block_label = label

    def br(self, label: str) -> None:
        self.emit(f"br label %{label}")

    # ------------------------------------------------------------- memory
    def gep(self, ty: str, ptr: str, idx, hint: str = "p") -> str:
        if idx == 0 or idx == "0":
            return ptr
        return self.assign(f"getelementptr inbounds {ty}, ptr {ptr}, i32 {idx}", hint)

    def byte_gep(self, ptr: str, offset: int, hint: str = "p") -> str:
        if offset == 0:
            return ptr
        return self.assign(f"getelementptr inbounds i8, ptr {ptr}, i32 {offset}", hint)

    def load(self, ty: str, ptr: str, hint: str = "v") -> str:
        return self.assign(f"load {ty}, ptr {ptr}, align {_align(ty)}", hint)

    def store(self, ty: str, val: str, ptr: str) -> None:
        self.emit(f"store {ty} {val}, ptr {ptr}, align {_align(ty)}")

    def alloca(self, ty: str, hint: str = "a") -> str:
        """A stack slot in the entry block (promoted to registers: accumulators carried by loops)."""
        v = self.tmp(hint)
        self.lines.insert(1, f"  {v} = alloca {ty}, align 64")
        return v

    def splat(self, ty: str, n: int, val: str, hint: str = "s") -> str:
        """<n x ty> with every lane = val."""
        v = self.assign(f"insertelement <{n} x {ty}> poison, {ty} {val}, i32 0", hint)
        return self.assign(f"shufflevector <{n} x {ty}> {v}, <{n} x {ty}> poison, <{n} x i32> zeroinitializer", hint)

    def load_at(self, ty: str, base: str, idx, hint: str = "v") -> str:
        return self.load(ty, self.gep(ty, base, idx), hint)

    def store_at(self, ty: str, val: str, base: str, idx) -> None:
        self.store(ty, val, self.gep(ty, base, idx))

    def memcpy(self, dst: str, src: str, nbytes: int) -> None:
        if nbytes <= 0:
            return
        self.module.declare("llvm.memcpy", "declare void @llvm.memcpy.p0.p0.i32(ptr, ptr, i32, i1)")
        self.emit(f"call void @llvm.memcpy.p0.p0.i32(ptr align 4 {dst}, ptr align 4 {src}, i32 {nbytes}, i1 false)")

    def memmove(self, dst: str, src: str, nbytes: int) -> None:
        if nbytes <= 0:
            return
        self.module.declare("llvm.memmove", "declare void @llvm.memmove.p0.p0.i32(ptr, ptr, i32, i1)")
        self.emit(f"call void @llvm.memmove.p0.p0.i32(ptr align 4 {dst}, ptr align 4 {src}, i32 {nbytes}, i1 false)")

    def memset0(self, dst: str, nbytes) -> None:
        self.module.declare("llvm.memset", "declare void @llvm.memset.p0.i32(ptr, i8, i32, i1)")
        self.emit(f"call void @llvm.memset.p0.i32(ptr align 4 {dst}, i8 0, i32 {nbytes}, i1 false)")

    # ------------------------------------------------------------- arithmetic
    def fop(self, op: str, a: str, b: str, ty: str = "float", fast: bool | str = True, hint: str = "f") -> str:
        flags = f"{FAST_REDUCE} " if fast == "reduce" else f"{FAST} " if fast else ""
        return self.assign(f"{op} {flags}{ty} {a}, {b}", hint)

    def fadd(self, a, b, ty="float", fast=True):
        return self.fop("fadd", a, b, ty, fast)

    def fsub(self, a, b, ty="float", fast=True):
        return self.fop("fsub", a, b, ty, fast)

    def fmul(self, a, b, ty="float", fast=True):
        return self.fop("fmul", a, b, ty, fast)

    def fdiv(self, a, b, ty="float", fast=True):
        return self.fop("fdiv", a, b, ty, fast)

    def fcmp(self, pred: str, a: str, b: str, ty: str = "float") -> str:
        return self.assign(f"fcmp {pred} {ty} {a}, {b}", "c")

    def icmp(self, pred: str, a: str, b: str, ty: str = "i32") -> str:
        return self.assign(f"icmp {pred} {ty} {a}, {b}", "c")

    def select(self, cond: str, a: str, b: str, ty: str = "float") -> str:
        return self.assign(f"select i1 {cond}, {ty} {a}, {ty} {b}", "s")

    def iop(self, op: str, a, b, ty: str = "i32") -> str:
        return self.assign(f"{op} {ty} {a}, {b}", "i")

    def call(self, ret: str, fn: str, args: list[tuple[str, str]], hint: str = "r") -> str | None:
        arglist = ", ".join(f"{t} {v}" for t, v in args)
        if ret == "void":
            self.emit(f"call void {fn}({arglist})")
            return None
        return self.assign(f"call {ret} {fn}({arglist})", hint)

    def intrinsic(self, name: str, ty: str, args: list[str], hint: str = "r") -> str:
        """Call llvm.<name>.<f32|f64> (sqrt, fabs, ...) declared on demand."""
        suffix = "f32" if ty == "float" else "f64"
        full = f"llvm.{name}.{suffix}"
        self.module.declare(full, f"declare {ty} @{full}({', '.join([ty] * len(args))})")
        return self.call(ty, f"@{full}", [(ty, a) for a in args], hint)

    # ------------------------------------------------------------- control flow
    @contextlib.contextmanager
    def loop(self, start, stop, step: int = 1, vectorize: bool = False, hint: str = "L") -> Iterator[str]:
        """for (i32 i = start; i < stop; i += step) { body }. Yields the induction variable."""
        head, body, latch, done = (
            self.label(f"{hint}.head"),
            self.label(f"{hint}.body"),
            self.label(f"{hint}.latch"),
            self.label(f"{hint}.done"),
        )
        pred = self.block_label
        iv = self.tmp("i")
        nxt = self.tmp("i")
        self.br(head)
        self.block(head)
        self.emit(f"{iv} = phi i32 [ {start}, %{pred} ], [ {nxt}, %{latch} ]")
        c = self.icmp("slt", iv, str(stop))
        self.emit(f"br i1 {c}, label %{body}, label %{done}")
        self.block(body)
        yield iv
        self.br(latch)
        self.block(latch)
        self.emit(f"{nxt} = add nsw i32 {iv}, {step}")
        md = f", !llvm.loop {self.module.vectorize_md()}" if vectorize and _worth_vectorizing(start, stop, step) else ""
        self.emit(f"br label %{head}{md}")
        self.block(done)

    @contextlib.contextmanager
    def if_(self, cond: str, hint: str = "if") -> Iterator[None]:
        then, done = self.label(f"{hint}.then"), self.label(f"{hint}.end")
        self.emit(f"br i1 {cond}, label %{then}, label %{done}")
        self.block(then)
        yield
        self.br(done)
        self.block(done)

    def ret(self, value: str | None = None, ty: str | None = None) -> None:
        self.emit("ret void" if value is None else f"ret {ty or self.ret_ty} {value}")

    def text(self) -> str:
        params = ", ".join(f"{t} %{n}" for t, n in self.params)
        linkage = "internal " if self.internal else ""
        attrs = "#1" if self.inline else "#0"
        return f"define {linkage}{self.ret_ty} @{self.name}({params}) {attrs} {{\n" + "\n".join(self.lines) + "\n}\n"


def _worth_vectorizing(start, stop, step) -> bool:
    """A forced vectorisation of a loop with fewer iterations than lanes fails with a warning."""
    try:
        return (int(stop) - int(start)) // step >= 16
    except ValueError:  # a run-time trip count
        return True


def _align(ty: str) -> int:
    return {"float": 4, "double": 8, "i32": 4, "i64": 8, "i16": 2, "i8": 1, "i1": 1, "ptr": 8}.get(ty, 4)
