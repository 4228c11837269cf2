"""The ONNX translator's core: builds our graph node by node, dispatches ONNX nodes to handlers,
folds constant subgraphs and keeps the per-frame shape bookkeeping.

Handlers live in onnx_ops (per-frame ops) and onnx_temporal (ops over the time axis); each is a
method `_op_<OpType>(node, ins, attrs) -> list of output values`.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from core.errors import ModelFormatError, ModelImportError
from core.graph.ir import Node
from core.graph.ops import OPS
from core.importers.limits import MAX_FRAME, MAX_PARAM, prod
from core.importers.onnx_values import TIME, Bad, Const, Poison, StateIn, Stream, squeezed

# ops that only pass an RNN's initial state along (allowed on StateIn values)
_STATE_OPS = {"Identity", "Slice", "Squeeze", "Unsqueeze", "Gather", "Split", "Reshape", "Cast", "Transpose"}
# what a malformed node (missing inputs, attributes of the wrong type or rank) makes a handler raise
MALFORMED = (IndexError, KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError,
             np.linalg.LinAlgError)
# ops whose output can be far larger than their inputs (sizes come from values or attributes);
# folded only when ONNX shape inference tells the output size
_GROWERS = {
    "ConstantOfShape", "Expand", "Tile", "Range", "OneHot", "Resize", "Upsample", "Pad", "RandomNormal",
    "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "ConvTranspose", "Col2Im",
    "CenterCropPad", "MaxUnpool", "DFT", "STFT", "MelWeightMatrix", "HannWindow", "HammingWindow",
    "BlackmanWindow", "If",
}
_LOOPS = {"Loop", "Scan", "SequenceMap"}
# ops whose work per output element grows with an input's size: folded only within MAX_FOLD_WORK
# multiply-adds (a few seconds of numpy); the value is the work per output element, from input shapes
MAX_FOLD_WORK = 1 << 30
_COSTLY = {
    "MatMul": lambda s: s[0][-1] if s and s[0] else 1,
    "Gemm": lambda s: max(s[0]) if s and s[0] else 1,
    "Conv": lambda s: prod(s[1][1:]) if len(s) > 1 else 1,
    "ConvTranspose": lambda s: prod(s[1]) if len(s) > 1 else 1,
    "Einsum": lambda s: prod(prod(x) for x in s),
}  # never evaluated at import: the trip count is the file's to choose


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        try:
            v = helper.get_attribute_value(a)
        except (ValueError, TypeError) as e:
            raise ModelFormatError(
                f"node {node_label(node)!r} ({node.op_type}): attribute {a.name!r} is malformed: {e}"
            ) from None
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[a.name] = v
    return out


def node_label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else "?")


class TranslateError(ModelImportError):
    pass


class Builder:
    """State of one translation: our nodes, their per-frame shapes, ONNX values by name."""

    def __init__(self, name: str, opset: int, static_t: int | None):
        self.name = name
        self.opset = opset
        self.static_t = static_t  # the input's fixed time length, if the model has one
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.values: dict[str, Any] = {}
        self.unsupported: dict[str, list[str]] = {}
        self.current: onnx.NodeProto | None = None
        self._counts: dict[str, int] = {}
        self._reshapes: dict[tuple[str, tuple], str] = {}

    # ------------------------------------------------------------------ errors
    def fail(self, msg: str):
        where = ""
        if self.current is not None:
            where = f" node {node_label(self.current)!r} ({self.current.op_type})"
        raise TranslateError(f"{self.name}:{where}: {msg}")

    @property
    def step_model(self) -> bool:
        """The model was exported for one time step per call (time axis fixed at length 1)."""
        return self.static_t == 1

    # ------------------------------------------------------------------ building our graph
    def add(
        self,
        op: str,
        inputs: list[str],
        attrs: dict | None = None,
        params: dict | None = None,
        hint: str | None = None,
    ) -> str:
        for key, v in (params or {}).items():
            if np.asarray(v).dtype.kind not in "biuf":
                self.fail(f"{op} {key} must be real numbers, not {np.asarray(v).dtype}")
        prefix = re.sub(r"[^a-z0-9_]", "", (hint or op).lower()) or "n"
        k = self._counts.get(prefix, 0)
        self._counts[prefix] = k + 1
        nid = f"{prefix}{k}"
        node = Node(
            nid,
            op,
            list(inputs),
            dict(attrs or {}),
            {key: np.ascontiguousarray(np.asarray(v, np.float32)) for key, v in (params or {}).items()},
        )
        spec = OPS[op]
        for key, v in node.params.items():
            if v.size > MAX_PARAM:
                self.fail(f"{op} {key} of {v.size} elements is larger than allowed ({MAX_PARAM})")
        try:
            shape = tuple(int(d) for d in spec.shape(node, [self.shapes[i] for i in inputs]))
        except (KeyError, TypeError, ValueError, IndexError, ModelFormatError) as e:
            self.fail(f"cannot build {op} node: {e}")
        if prod(shape) > MAX_FRAME or min(shape, default=1) < 0:
            self.fail(f"a frame of shape {shape} (at most {MAX_FRAME} values are allowed)")
        self.nodes.append(node)
        self.shapes[nid] = shape
        return nid

    def constant(self, value: np.ndarray) -> str:
        return self.add("constant", [], {}, {"value": np.asarray(value, np.float32)}, hint="const")

    def as_shape(self, nid: str, shape) -> str:
        """Our node `nid` viewed with per-frame shape `shape` (a reshape node when it differs)."""
        shape = tuple(int(d) for d in shape) or (1,)
        if self.shapes[nid] == shape:
            return nid
        key = (nid, shape)
        if key not in self._reshapes:
            self._reshapes[key] = self.add("reshape", [nid], {"shape": list(shape)})
        return self._reshapes[key]

    def emit(
        self, op: str, inputs: list[str], attrs: dict | None, params: dict | None, like: Stream, **changes
    ) -> Stream:
        """Add a node and describe its output: `like` with `changes`; the node is reshaped to the
        canonical (squeezed) per-frame shape of the new dims."""
        nid = self.add(op, inputs, attrs, params)
        out = like.with_(node=nid, pad_t=(0, 0), **changes)
        return self.canonical(out)

    def canonical(self, s: Stream) -> Stream:
        return s.with_(node=self.as_shape(s.node, squeezed(s.frame_dims)))

    def full(self, s: Stream) -> str:
        """Our node for `s` with per-frame shape = its ONNX frame dims (size-1 axes kept)."""
        return self.as_shape(s.node, s.frame_dims or (1,))

    def view(self, s: Stream, axes: list[int]) -> tuple[str, list[int]]:
        """Our node for `s` and the per-frame indices of the ONNX `axes`: the squeezed frame when
        none of those axes has size 1 (no reshape needed), else the full frame."""
        if all(s.dims[a] != 1 for a in axes):
            keep = [k for k in range(s.rank) if k != s.t and s.dims[k] != 1]
            return self.as_shape(s.node, squeezed(s.frame_dims)), [keep.index(a) for a in axes]
        return self.full(s), [s.frame_axis(a) for a in axes]

    def plain(self, s: Stream) -> Stream:
        if s.pad_t != (0, 0):
            self.fail("a Pad over the time axis is only supported directly before a Conv")
        return s

    # ------------------------------------------------------------------ values
    def get(self, name: str):
        if name == "":
            return None
        if name not in self.values:
            where = f" node {node_label(self.current)!r}" if self.current is not None else ""
            raise ModelFormatError(
                f"{self.name}:{where}: input {name!r} is not defined by any earlier node, "
                "initializer or graph input (malformed or truncated model)"
            )
        return self.values[name]

    def const(self, v, what: str) -> np.ndarray:
        if isinstance(v, Const):
            if np.asarray(v.value).dtype.kind not in "biuf":
                self.fail(f"{what} must be a tensor of real numbers, not {np.asarray(v.value).dtype}")
            return v.value
        self.fail(f"{what} must be a constant (it depends on the model input)")

    def ints(self, v, what: str) -> list[int]:
        return [int(x) for x in np.asarray(self.const(v, what)).reshape(-1)]

    def stream(self, v, what: str = "input") -> Stream:
        if isinstance(v, Stream):
            return self.plain(v)
        if isinstance(v, StateIn):
            self.fail(f"graph input {v.name!r} is used other than as an RNN initial state")
        self.fail(f"{what} must depend on the model input")

    # ------------------------------------------------------------------ dispatch
    def visit(self, node: onnx.NodeProto) -> None:
        self.current = node
        ins = [self.get(n) for n in node.input]
        for v in ins:
            if isinstance(v, Bad):
                self.fail(v.message)
        if any(isinstance(v, Poison) for v in ins):
            outs: list = [Poison()] * len(node.output)
            if node.domain not in ("", "ai.onnx") or not hasattr(self, "_op_" + node.op_type):
                self.unsupported_node(node)  # listed too, though its input is already unsupported
        elif node.domain not in ("", "ai.onnx"):
            outs = self.unsupported_node(node)
        elif any(isinstance(v, StateIn) for v in ins) and node.op_type not in ("GRU", "LSTM"):
            if node.op_type not in _STATE_OPS or any(isinstance(v, Stream) for v in ins):
                name = next(v.name for v in ins if isinstance(v, StateIn))
                self.fail(f"graph input {name!r} is used other than as an RNN initial state")
            outs = [next(v for v in ins if isinstance(v, StateIn))] * len(node.output)
        elif all(v is None or isinstance(v, Const) for v in ins):
            outs = self.guarded(self.fold, node, ins)
        else:
            handler = getattr(self, "_op_" + node.op_type, None)
            if handler is None:
                outs = self.unsupported_node(node)
            else:
                outs = self.guarded(handler, node, ins, attributes(node))
        if len(outs) < len([o for o in node.output if o]):
            outs = list(outs) + [Bad(f"output of {node_label(node)!r} ({node.op_type}) is not supported")] * (
                len(node.output) - len(outs)
            )
        for name, v in zip(node.output, outs):
            if name:
                self.values[name] = v
        self.current = None

    def guarded(self, fn, *args) -> list:
        """Run a handler; a malformed node (an input or attribute missing, of the wrong type or rank)
        becomes a TranslateError naming the file and the node, never a raw Python error."""
        try:
            return fn(*args)
        except MALFORMED as e:
            self.fail(f"malformed node (an input or attribute is missing or of the wrong type or shape): {e!r}")

    def unsupported_node(self, node: onnx.NodeProto) -> list:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        self.unsupported.setdefault(op, []).append(node_label(node))
        return [Poison()] * len(node.output)

    # ------------------------------------------------------------------ constant folding
    def fold(self, node: onnx.NodeProto, ins: list) -> list:
        """Evaluate a node whose inputs are all constants (our table first, then onnx.reference)."""
        own = getattr(self, "_fold_" + node.op_type, None)
        if own is not None and node.op_type not in ("Identity", "Dropout", "Shape", "Constant"):
            for v in ins:
                if v is not None and np.asarray(v.value).dtype.kind not in "biuf":
                    self.fail(f"an input of type {np.asarray(v.value).dtype} is not supported here")
        if own is not None:
            return [
                Const(np.asarray(v))
                for v in own(node, [None if v is None else v.value for v in ins], attributes(node))
            ]
        handler = getattr(self, "_op_" + node.op_type, None)
        if node.op_type in _LOOPS or self._has_loop(node):  # never run at import: the file sets the trip count
            if handler is None:
                self.unsupported_node(node)
                return [Poison()] * len(node.output)
            self.fail("a loop over constants is not evaluated at import")
        problem = self._fold_size_problem(node, ins)
        if problem is not None:
            self.fail(problem)
        try:
            from onnx.reference import ReferenceEvaluator

            names = [f"in{k}" if v is not None else "" for k, v in enumerate(ins)]
            n2 = helper.make_node(node.op_type, names, [f"out{k}" for k in range(len(node.output))])
            n2.attribute.extend(node.attribute)
            feeds = {nm: v.value for nm, v in zip(names, ins) if v is not None}
            g = helper.make_graph(
                [n2],
                "fold",
                [
                    helper.make_tensor_value_info(
                        nm, numpy_helper.from_array(np.asarray(feeds[nm])).data_type, None
                    )
                    for nm in feeds
                ],
                [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in n2.output],
            )
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # a bad result is refused below
                warnings.simplefilter("ignore")
                res = [np.asarray(r) for r in ReferenceEvaluator(m).run(None, feeds)]
            if any(r.size > MAX_PARAM for r in res):
                raise ValueError(f"a result of more than {MAX_PARAM} elements")
            return [Const(r) for r in res]
        except Exception as e:  # noqa: BLE001 - any failure of the reference means "cannot fold"
            if handler is None:
                self.unsupported_node(node)
                return [Poison()] * len(node.output)
            self.fail(f"cannot evaluate this constant subgraph: {e}")

    @staticmethod
    def _has_loop(node: onnx.NodeProto) -> bool:
        """Whether a node's subgraphs (If branches, ...) hold a loop anywhere (iterative walk)."""
        stack = [g for a in node.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]
        while stack:
            g = stack.pop()
            for n in g.node:
                if n.op_type in _LOOPS:
                    return True
                stack.extend(g2 for a in n.attribute for g2 in ([a.g] if a.HasField("g") else []) + list(a.graphs))
        return False

    def _fold_size_problem(self, node: onnx.NodeProto, ins: list) -> str | None:
        """Why a node must not be folded: ONNX shape inference says (or cannot rule out, for ops
        that make tensors from values) that its output is larger than MAX_PARAM elements. Checked
        before anything is allocated; small inputs go in as initializers, so shapes computed from
        values (Expand, Tile, Range, ...) are known."""
        outs = []
        try:
            names, inits, infos = [], [], []
            for k, v in enumerate(ins):
                if v is None:
                    names.append("")
                    continue
                arr = np.asarray(v.value)
                names.append(f"in{k}")
                if arr.size <= 64:
                    inits.append(numpy_helper.from_array(arr, f"in{k}"))
                dtype = numpy_helper.from_array(arr.reshape(-1)[:0]).data_type
                infos.append(helper.make_tensor_value_info(f"in{k}", dtype, list(arr.shape)))
            n2 = helper.make_node(node.op_type, names, [f"out{k}" for k in range(len(node.output))])
            n2.attribute.extend(node.attribute)
            results = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in n2.output]
            g = helper.make_graph([n2], "size", infos, results, initializer=inits)
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
            inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
            outs = [o.type.tensor_type for o in inferred.graph.output]
        except Exception:  # noqa: BLE001 - inference failing means "size unknown"
            pass
        known = len(outs) == len(node.output) and all(
            t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim) for t in outs
        )
        for t in outs:
            dims = [d.dim_value for d in t.shape.dim if d.HasField("dim_value")]
            if prod(dims) > MAX_PARAM or any(d < 0 for d in dims):
                return f"this constant subgraph makes a tensor of shape {dims}, larger than allowed"
        if not known and node.op_type in _GROWERS | set(_COSTLY):
            return "cannot tell the size of this constant subgraph's result before evaluating it"
        if node.op_type in _COSTLY and outs:
            shapes = [np.shape(v.value) if v is not None else () for v in ins]
            work = prod(d.dim_value for d in outs[0].shape.dim) * _COSTLY[node.op_type](shapes)
            if work > MAX_FOLD_WORK:
                return f"evaluating this constant subgraph takes about {work:.2g} operations, more than allowed"
        return None

    # ------------------------------------------------------------------ broadcasting
    def broadcast(self, vals: list) -> tuple[Stream, list[tuple[int, ...]], tuple[int, ...]]:
        """Line up streams and constants for an element-wise op (numpy broadcasting over the ONNX
        shapes). Returns (a stream describing the output, each operand's squeezed per-frame shape,
        the output's squeezed per-frame shape). Streams get delay-aligned."""
        streams = [self.plain(v) for v in vals if isinstance(v, Stream)]
        rank = max(v.rank if isinstance(v, Stream) else np.ndim(v.value) for v in vals)
        t_pos = set()
        for s in streams:
            if s.t is not None:
                t_pos.add(s.t + rank - s.rank)
        if len(t_pos) > 1:
            self.fail("operands have their time axes in different places")
        t = t_pos.pop() if t_pos else None
        aligned = []
        for v in vals:
            d = list(v.dims) if isinstance(v, Stream) else list(np.shape(v.value))
            d = [1] * (rank - len(d)) + d
            if isinstance(v, Const) and t is not None and d[t] != 1:
                self.fail("a constant operand varies along the time axis")
            if isinstance(v, Stream) and v.t is None and t is not None:
                d[t] = 1  # a reduced stream broadcasts over time: its value at the current step
            aligned.append(d)
        out = []
        for k in range(rank):
            sizes = {d[k] for d in aligned if d[k] != 1}
            if k == t:
                out.append(TIME)
                continue
            if len(sizes) > 1:
                self.fail(f"shapes {[tuple(a) for a in aligned]} do not broadcast")
            out.append(sizes.pop() if sizes else 1)
        keep = [k for k in range(rank) if k != t and out[k] != 1]
        shapes = [tuple(d[k] for k in keep) or (1,) for d in aligned]
        out_shape = tuple(out[k] for k in keep) or (1,)
        delay = max((s.delay for s in streams), default=0)
        tail = max((s.tail + delay - s.delay for s in streams), default=0)
        like = Stream("", tuple(out), t, delay, tail)
        return like, shapes, out_shape

    def operand(self, v, shape, delay: int) -> str:
        """Our node for an element-wise operand: constants become constant nodes; streams are
        reshaped to `shape` and delayed to `delay`."""
        if isinstance(v, Const):
            return self.constant(np.asarray(self.const(v, "a constant operand"), np.float32).reshape(shape))
        nid = v.node
        if v.delay < delay:
            nid = self.add("delay", [nid], {"frames": delay - v.delay})
        return self.as_shape(nid, shape)
