"""Import ONNX classifiers (PyTorch exports, old and new) into our streaming graph.

    graph = load_onnx("model.onnx")              # final LogSoftmax -> Softmax (as ELL does)
    graph = load_onnx("model.onnx", softmax=False, time_axis=1)

Streaming rule. Our graph consumes one feature frame per call. The model's time axis becomes
that stream: frame k of our output is the model's output at time step k, i.e. the last step of
the ONNX model run over frames 0..k (what onnxruntime gives over a whole sequence at step k, for
a causal model). RNN state and convolution buffers persist between calls and reset together.

Which input axis is time (override with `time_axis`):
1. follow the input through layout and element-wise ops to the first GRU/LSTM (its sequence
   axis, by `layout`) or Conv/pool (a 1-D op's length axis; for 2-D, of (batch, channels, H, W),
   whichever of H, W is dynamic in the input, else H: [batch, 1, time, features]);
2. no such op (dense-only): a dynamic axis named like time/seq/frame/len/step; else axis 0 of a
   2-D input [frames, features]; else of [batch, time, features]-like inputs axis 1.
Other dynamic axes are the batch and taken as 1. A model exported with a fixed time length of 1
(one step per call, e.g. PyTorch 0.3 files) is a "step model"; see onnx_temporal for what that
means for reductions. The rules per op are in onnx_temporal's docstring.

The model's inputs: one feature input; extra inputs that only feed RNN initial states (streaming
exports with state in/out) are dropped, because our RNN nodes keep their own state. Only the
first output is imported (state outputs of streaming exports are dropped).

Constant subgraphs (weights reordered with Slice/Concat, shape arithmetic from Shape) fold at
import. Errors: unsupported ops are reported together, op type by op type with node names, as
one `ModelImportError`; unreadable, malformed or truncated files, missing external data and
external-data paths outside the model's folder give a `ModelFormatError`. Nothing is written.

Hostile files: the file must be a regular file (no FIFO or device) within core.importers.limits'
size caps, and so must its external data (offsets and lengths plain byte counts, sizes checked
before reading). Graph walks are iterative and a cycle is refused. A node with missing inputs or
attributes of the wrong type or rank is a `ModelImportError` naming it; a constant subgraph is
folded only when ONNX shape inference shows its result within the limits (loops never run), and
every per-frame tensor the translation builds is checked against them before it exists.
"""

from __future__ import annotations

import collections
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelFormatError, ModelImportError
from core.fsutil import check_regular_file, read_bytes_bounded
from core.graph.ir import Graph
from core.importers.limits import MAX_FRAME, MAX_NODES, MAX_ONNX_BYTES
from core.importers.onnx_build import MALFORMED, TranslateError, attributes, node_label
from core.importers.onnx_passes import simplify
from core.importers.onnx_temporal import TemporalOps
from core.importers.onnx_values import TIME, Const, Poison, StateIn, Stream, size, squeezed

MIN_OPSET = 6
_TRANSPARENT = {
    "Identity",
    "Dropout",
    "Cast",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Transpose",
    "Gather",
    "Slice",
    "ReduceMean",
    "GlobalAveragePool",
}
_SAME_AXES = {
    "Identity",
    "Dropout",
    "Cast",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "Tanh",
    "Clip",
    "Exp",
    "Log",
    "Sqrt",
    "Abs",
    "Neg",
    "BatchNormalization",
    "LayerNormalization",
    "Pad",
    "Softmax",
    "LogSoftmax",
    "Add",
    "Sub",
    "Mul",
    "Div",
}
_STATE_PASS = {"Identity", "Slice", "Squeeze", "Unsqueeze", "Gather", "Split", "Reshape", "Cast", "Transpose"}
_TIME_NAME = re.compile(r"time|seq|frame|len|step", re.I)


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise ModelImportError("ONNX import needs the 'onnx' package (pip install onnx)") from None
    return onnx


# ---------------------------------------------------------------------- reading
def read_model(path: str | os.PathLike):
    """Parse an .onnx file and resolve its external data safely; a ModelFormatError otherwise."""
    onnx = _onnx()
    from google.protobuf.message import DecodeError

    p = Path(path)
    data = read_bytes_bounded(p, "ONNX model", error=ModelFormatError, max_bytes=MAX_ONNX_BYTES)
    if not data:
        raise ModelFormatError(f"{p}: not an ONNX model (the file is empty)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelFormatError(
            f"{p}: not an ONNX model, or truncated (protobuf decoding failed: {e})"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(f"{p}: not an ONNX model, or truncated (no graph nodes)")
    if not model.graph.output:
        raise ModelFormatError(f"{p}: malformed or truncated ONNX model (the graph has no outputs)")
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        raise ModelFormatError(f"{p}: malformed or truncated ONNX model (no default-domain opset_import)")
    if len(model.graph.node) > MAX_NODES:
        raise ModelImportError(f"{p}: {len(model.graph.node)} nodes, more than the {MAX_NODES} allowed")
    _check_names(model.graph, p)
    _resolve_external_data(model, p)
    return model


def _check_names(graph, p: Path) -> None:
    """Protobuf hands back invalid UTF-8 in a string field as bytes: refuse such names up front."""
    for k, n in enumerate(graph.node):
        names = [n.op_type, n.domain, n.name, *n.input, *n.output, *(a.name for a in n.attribute)]
        if not all(isinstance(x, str) for x in names):
            raise ModelFormatError(f"{p}: node {k}: a name, op type or tensor name is not valid UTF-8 text")
    lists = (("graph input", graph.input), ("graph output", graph.output), ("initializer", graph.initializer))
    for what, items in lists:
        for k, v in enumerate(items):
            if not isinstance(v.name, str):
                raise ModelFormatError(f"{p}: {what} {k}: its name is not valid UTF-8 text")


def _tensors(graph):
    """Every tensor of the graph, its subgraphs (If/Loop bodies) included (iterative walk)."""
    graphs = [graph]
    while graphs:
        g = graphs.pop()
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield from (sp.values, sp.indices)
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("sparse_tensor"):
                    yield from (a.sparse_tensor.values, a.sparse_tensor.indices)
                for sp in a.sparse_tensors:
                    yield from (sp.values, sp.indices)
                if a.HasField("g"):
                    graphs.append(a.g)
                graphs.extend(a.graphs)


def _count(value: str, what: str, where: str) -> int:
    """A non-negative byte count or offset from an external-data entry."""
    v = value.strip()
    if not (v.isascii() and v.isdigit()) or len(v) > 19:
        raise ModelFormatError(f"{where} {what} {value!r} is not a byte count")
    return int(v)


def _resolve_external_data(model, path: Path) -> None:
    onnx = _onnx()
    base = path.resolve().parent
    total = 0
    for t in _tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        if not all(isinstance(x, str) for kv in info.items() for x in kv):
            raise ModelFormatError(f"{path}: tensor {t.name!r}: an external-data entry is not valid UTF-8 text")
        loc = info.get("location", "")
        where = f"{path}: tensor {t.name!r}: external data"
        rel = Path(loc)
        if not loc or rel.is_absolute() or ".." in rel.parts or loc.startswith(("/", "\\")):
            raise ModelFormatError(f"{where} path {loc!r} is outside the model's folder")
        full = (base / rel).resolve()
        if not full.is_relative_to(base):
            raise ModelFormatError(f"{where} path {loc!r} leads outside the model's folder")
        if not full.exists():
            raise ModelFormatError(f"{where} file {loc!r} is missing (expected beside the model, at {full})")
        try:
            check_regular_file(full, "external data file", error=ModelFormatError)
        except ModelFormatError as e:
            raise ModelFormatError(f"{where}: {e}") from None
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(f"{where}: unknown data type {t.data_type}") from None
        if any(d < 0 for d in t.dims):
            raise ModelFormatError(f"{where}: the tensor has negative dims {list(t.dims)}")
        need = size(t.dims) * dtype.itemsize
        total += need
        if total > MAX_ONNX_BYTES:
            raise ModelFormatError(
                f"{where}: tensor dims {list(t.dims)} make the external data larger than the "
                f"{MAX_ONNX_BYTES} bytes allowed"
            )
        offset = _count(info.get("offset", "0") or "0", "offset", where)
        length = _count(info.get("length", "") or str(need), "length", where)
        if length != need:
            raise ModelFormatError(f"{where} has {length} bytes, the tensor needs {need}")
        have = full.stat().st_size
        if offset + length > have:
            raise ModelFormatError(
                f"{where} file {loc!r} is truncated ({max(have - offset, 0)} of {length} bytes at offset {offset})"
            )
        with open(full, "rb") as f:
            f.seek(offset)
            raw = f.read(length)
        if len(raw) != length:
            raise ModelFormatError(
                f"{where} file {loc!r} is truncated ({len(raw)} of {length} bytes at offset {offset})"
            )
        t.raw_data = raw
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


# ---------------------------------------------------------------------- inputs and the time axis
def _consumers(graph) -> dict[str, list[tuple[Any, int]]]:
    out: dict[str, list] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            out.setdefault(name, []).append((node, k))
    return out


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    consts = {}
    for t in graph.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 - reported when the translator reads it
            pass
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            try:
                at = attributes(node)
                if "value" in at:
                    consts[node.output[0]] = numpy_helper.to_array(at["value"])
                elif "value_ints" in at:
                    consts[node.output[0]] = np.asarray(at["value_ints"])
            except Exception:  # noqa: BLE001 - reported when the translator reads it
                pass
    return consts


def _only_rnn_state(name: str, consumers) -> bool:
    """Whether tensor `name` only feeds RNN initial states, through state-passing ops (iterative)."""
    stack, seen = [name], {name}
    while stack:
        for node, k in consumers.get(stack.pop(), []):
            if node.op_type in ("GRU", "RNN") and k == 5 or node.op_type == "LSTM" and k in (5, 6):
                continue
            if node.op_type not in _STATE_PASS or k != 0:
                return False
            for o in node.output:
                if o in seen:
                    return False  # a loop back through the state ops
                if o:
                    seen.add(o)
                    stack.append(o)
    return True


def _pick_input(graph, name: str, wanted: str | None):
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if wanted is not None:
        main = [i for i in inputs if i.name == wanted]
        if not main:
            raise ModelImportError(
                f"{name}: no graph input named {wanted!r} (inputs: {', '.join(i.name for i in inputs)})"
            )
        return main[0], [i.name for i in inputs if i.name != wanted]
    cons = _consumers(graph)
    state = [i.name for i in inputs if _only_rnn_state(i.name, cons)]
    rest = [i for i in inputs if i.name not in state]
    if len(rest) != 1:
        raise ModelImportError(
            f"{name}: expected one feature input (other inputs may only feed RNN initial "
            f"states), found {len(rest)}: {', '.join(i.name for i in rest) or 'none'}"
        )
    return rest[0], state


def _propagate(node, k: int, axmap: list, consts) -> list | None:
    op, at = node.op_type, attributes(node)
    if op in _SAME_AXES:
        return axmap
    if op == "Transpose":
        perm = at.get("perm", list(range(len(axmap)))[::-1])
        return [axmap[p] for p in perm] if len(perm) == len(axmap) else None
    if op in ("Unsqueeze", "Squeeze"):
        axes = at.get("axes")
        if axes is None and len(node.input) > 1:
            axes = consts.get(node.input[1])
        if axes is None:
            return None
        axes = [int(a) for a in np.asarray(axes).reshape(-1)]
        if op == "Squeeze":
            axes = {a + len(axmap) if a < 0 else a for a in axes}
            return [m for i, m in enumerate(axmap) if i not in axes]
        out = list(axmap)
        rank = len(axmap) + len(axes)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            out.insert(a, None)
        return out
    return None


def find_time_axis(graph, inp, name: str) -> int | None:
    """The input axis that is time (see the module docstring), or None for a rank-1 input."""
    dims = inp.type.tensor_type.shape.dim
    rank = len(dims)
    dynamic = [not (d.HasField("dim_value") and d.dim_value > 0) for d in dims]
    cons, consts = _consumers(graph), _constants(graph)
    queue, seen = collections.deque([(inp.name, list(range(rank)))]), set()
    while queue:
        tname, axmap = queue.popleft()
        if tname in seen:
            continue
        seen.add(tname)
        for node, k in cons.get(tname, []):
            try:
                at = attributes(node)
                if node.op_type in ("GRU", "LSTM") and k == 0 and len(axmap) == 3:
                    m = axmap[int(at.get("layout", 0))]
                    if m is not None:
                        return m
                if node.op_type in ("Conv", "MaxPool", "AveragePool") and k == 0 and len(axmap) in (3, 4):
                    mapped = [axmap[a] for a in range(2, len(axmap)) if axmap[a] is not None]
                    dyn = [m for m in mapped if dynamic[m]]
                    if dyn or mapped:
                        return (dyn or mapped)[0]
                out = _propagate(node, k, axmap, consts)
            except (ModelFormatError, *MALFORMED):
                out = None  # a malformed node: the translator reports it with its name
            if out is not None and all(m is None or 0 <= m < rank for m in out):
                queue.extend((o, out) for o in node.output if o)
    if rank <= 1:
        return None
    if rank == 2:
        return 0
    named = [k for k in range(rank - 1) if _TIME_NAME.search(dims[k].dim_param or "")]
    if named:
        return named[0]
    dyn = [k for k in range(rank - 1) if dynamic[k]]
    if len(dyn) == 1 and dyn[0] != 0:
        return dyn[0]
    varying = [k for k in range(rank - 1) if not dynamic[k] and dims[k].dim_value != 1]
    if not dyn and len(varying) == 1:
        return varying[0]
    return 1


# ---------------------------------------------------------------------- the translation
class Translator(TemporalOps):
    """All handlers together; `to_softmax` names the LogSoftmax output to emit as Softmax."""

    to_softmax: frozenset[str] = frozenset()


def _producers(graph, name: str) -> dict[str, Any]:
    producer: dict[str, Any] = {}
    for n in graph.node:
        for o in n.output:
            if o in producer:
                raise ModelFormatError(f"{name}: tensor {o!r} is the output of two nodes (malformed model)")
            if o:
                producer[o] = n
    return producer


def _needed(graph, output: str, name: str) -> list:
    """The nodes `output` depends on, each after the nodes it reads: the file's order when that is
    topological (as ONNX requires), else a depth-first order. A cycle is a ModelFormatError."""
    producer = _producers(graph, name)
    state: dict[int, int] = {}  # id(node): 1 on the current path, 2 done
    post: list = []
    first = producer.get(output)
    stack = [(first, iter(first.input))] if first is not None else []
    if first is not None:
        state[id(first)] = 1
    while stack:
        node, inputs = stack[-1]
        i = next(inputs, None)
        if i is None:
            stack.pop()
            state[id(node)] = 2
            post.append(node)
            continue
        dep = producer.get(i)
        if dep is None:
            continue
        if state.get(id(dep)) == 1:
            raise ModelFormatError(
                f"{name}: node {node_label(dep)!r} ({dep.op_type}) depends on its own output through "
                f"tensor {i!r} (a cycle in the graph)"
            )
        if id(dep) not in state:
            state[id(dep)] = 1
            stack.append((dep, iter(dep.input)))
    pos = {id(n): k for k, n in enumerate(graph.node)}
    in_file_order = sorted(post, key=lambda n: pos[id(n)])
    if all(pos[id(producer[i])] < pos[id(n)] for n in post for i in n.input if i in producer):
        return in_file_order
    return post


def _follow(graph, output: str, stop) -> Any:
    """Walk back from `output` through transparent ops (first inputs) to the first other node;
    `stop(node)` says what to return there. Each tensor once: a cycle ends the walk."""
    producer = {o: n for n in graph.node for o in n.output if o}
    name, seen = output, set()
    while name in producer and name not in seen:
        seen.add(name)
        n = producer[name]
        if n.op_type not in _TRANSPARENT or not n.input:
            return stop(n)
        name = n.input[0]
    return None


def _final_log_softmax(graph, output: str) -> str | None:
    return _follow(graph, output, lambda n: n.output[0] if n.op_type == "LogSoftmax" else None)


def _categories(model) -> list[str] | None:
    for prop in model.metadata_props:
        if not isinstance(prop.key, str) or not isinstance(prop.value, str):
            continue  # not valid UTF-8: not labels we could show
        if prop.key.lower() in ("categories", "labels", "classes", "class_names"):
            v = prop.value.strip()
            try:
                cats = json.loads(v)
                if isinstance(cats, list):
                    return [str(c) for c in cats]
            except (ValueError, RecursionError):
                pass
            sep = "\n" if "\n" in v else ","
            return [c.strip() for c in v.split(sep) if c.strip()]
    return None


def load_onnx(
    path: str | os.PathLike,
    *,
    softmax: bool = True,
    time_axis: int | None = None,
    input_name: str | None = None,
) -> Graph:
    """Import an ONNX classifier as a streaming graph (see the module docstring)."""
    onnx = _onnx()
    from onnx import numpy_helper

    p = Path(path)
    model = read_model(p)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ModelImportError(f"{p}: opset {opset} is not supported (supported: {MIN_OPSET} to {newest})")
    g = model.graph
    main_out = g.output[0].name
    needed = _needed(g, main_out, str(p))  # first: a cycle would trap the walks below
    inp, state_inputs = _pick_input(g, str(p), input_name)
    ttype = inp.type.tensor_type
    if not ttype.HasField("shape"):
        raise ModelImportError(f"{p}: input {inp.name!r} has no shape")
    if ttype.elem_type not in (1, 10, 11):
        raise ModelImportError(f"{p}: input {inp.name!r} is not a float tensor")
    rank = len(ttype.shape.dim)
    if time_axis is None:
        t = find_time_axis(g, inp, str(p))
    else:
        t = time_axis + rank if time_axis < 0 else time_axis
        if not 0 <= t < rank:
            raise ModelImportError(f"{p}: time axis {time_axis} is outside input {inp.name!r} of rank {rank}")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in ttype.shape.dim]
    frame = size([d for k, d in enumerate(dims) if k != t])
    if frame > MAX_FRAME or any(d >= TIME for d in dims):
        raise ModelImportError(
            f"{p}: input {inp.name!r} has shape {dims}: frames of {frame} values, or an axis of {TIME} "
            f"or more, are larger than allowed (at most {MAX_FRAME} values per frame)"
        )
    static_t = None
    if t is not None:
        d = ttype.shape.dim[t]
        static_t = d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        dims[t] = 0

    tr = Translator(str(p), opset, static_t)
    final = _final_log_softmax(g, main_out)
    tr.to_softmax = {final} if final and softmax else set()
    full = [d for k, d in enumerate(dims) if k != t]
    in_id = tr.add("input", [], {"size": size(full)}, hint="input")
    start = Stream(in_id, tuple(TIME if k == t else d for k, d in enumerate(dims)), t)
    tr.values[inp.name] = tr.canonical(start)
    for name in state_inputs:
        tr.values[name] = StateIn(name)
    for init in g.initializer:
        try:
            tr.values[init.name] = Const(numpy_helper.to_array(init))
        except Exception as e:  # noqa: BLE001 - protobuf/numpy raise many types for bad tensors
            raise ModelFormatError(f"{p}: initializer {init.name!r} is malformed or truncated: {e}") from None
    error: TranslateError | None = None
    try:
        with np.errstate(all="ignore"):  # overflow or NaN from absurd weights: refused by Graph.validate
            for node in needed:
                tr.visit(node)
    except TranslateError as e:
        error = e
    if tr.unsupported:
        listing = "; ".join(f"{op} ({', '.join(names)})" for op, names in sorted(tr.unsupported.items()))
        raise ModelImportError(f"{p}: unsupported ONNX operators: {listing}")
    if error is not None:
        raise error
    out = tr.values.get(main_out)
    if isinstance(out, Poison) or not isinstance(out, Stream):
        raise ModelImportError(f"{p}: output {main_out!r} does not depend on the input {inp.name!r}")
    if out.pad_t != (0, 0):
        raise ModelImportError(f"{p}: output {main_out!r} ends in a Pad over time")
    if out.t is not None and out.tail:
        raise ModelImportError(
            f"{p}: output {main_out!r} needs {out.tail} frame(s) of look-ahead (a convolution "
            "padded after the current frame in time): pad convolutions causally to stream it"
        )
    tr.add("output", [tr.as_shape(out.node, squeezed(out.frame_dims))], hint="output")
    try:
        with np.errstate(all="ignore"):  # folds that overflow leave non-finite weights: validate refuses them
            graph = simplify(Graph(tr.nodes, {}))
        graph.validate()
    except (ModelFormatError, *MALFORMED) as e:
        raise ModelImportError(f"{p}: the imported graph is inconsistent: {e!r}") from None
    graph.metadata = _metadata(model, p, opset, inp.name, t, out, softmax and final is not None, final)
    return graph


def _metadata(model, p: Path, opset: int, inp: str, t, out: Stream, converted: bool, final) -> dict:
    meta: dict[str, Any] = {
        "kind": "classifier",
        "source": {
            "format": "onnx",
            "file": p.name,
            "opset": opset,
            "ir_version": int(model.ir_version),
            "producer": " ".join(_text(x) for x in (model.producer_name, model.producer_version) if x),
            "input": inp,
            "time_axis": t,
        },
        "latency_frames": int(out.delay),
        "output": "probabilities (final LogSoftmax turned into Softmax)"
        if converted
        else (
            "log-probabilities"
            if final
            else (
                "probabilities"
                if _final_op(model.graph, model.graph.output[0].name) == "Softmax"
                else "scores"
            )
        ),
    }
    cats = _categories(model)
    if cats:
        meta["categories"] = cats
    return meta


def _text(x) -> str:
    """A protobuf string field (bytes when it is not valid UTF-8) as text."""
    return x if isinstance(x, str) else x.decode("utf-8", "replace")


def _final_op(graph, output: str) -> str | None:
    return _follow(graph, output, lambda n: n.op_type)
