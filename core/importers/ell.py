"""Import ELL model files (.ell, JSON) into our graph.

Covers the node types of ELL's audio tutorials: input/output, buffer, Hamming/Hann window,
FFT, mel and linear filter banks, IIR filter, DCT, constants, unary and binary operations,
VAD, GRU/LSTM with reset trigger, fully connected / bias / softmax / activation layers and
layout reinterpretation. GRU/LSTM nodes carry the key "activation" twice (activation, then
gate activation): the parser keeps both.

Hostile or broken files give a ModelFormatError (not an ELL model: bad JSON, wrong structure,
missing nodes) or a ModelImportError (a node we cannot translate, a cycle, a size past the limits
of core.importers.limits, NaN or infinite weights), naming the file, the node and the field. The
graph is walked iteratively, so long chains cannot exhaust Python's recursion limit.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import KwsError, ModelFormatError, ModelImportError
from core.features import dsp
from core.features.vad import VadConfig
from core.fsutil import read_text_bounded
from core.graph.ir import Graph, Node
from core.graph.ops import OPS
from core.importers.limits import MAX_ELL_BYTES, MAX_FFT, MAX_FILTERS, MAX_FRAME, MAX_NODES, MAX_PARAM

_PORT = re.compile(r"^\s*(\w+)\.(\w+)\s*$")
_PORT_NODE = re.compile(r"^\s*(\w+)\.")  # the node a port refers to, whatever element range follows
_ACT = {
    "TanhActivation": "tanh",
    "SigmoidActivation": "sigmoid",
    "HardSigmoidActivation": "hard_sigmoid",
    "ReLUActivation": "relu",
}
_UNARY = {"log": "log", "exp": "exp", "sqrt": "sqrt", "abs": "abs", "tanh": "tanh", "sigmoid": "sigmoid",
          "square": "square", "negate": "neg", "hardSigmoid": "hard_sigmoid"}
_BINARY = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
           "max": "max", "min": "min", "coordinatewiseMultiply": "mul", "coordinatewiseDivide": "div"}
_IGNORED = ("SinkNode", "DebugSinkNode")


def _keep_duplicates(pairs):
    """A repeated key k is kept as k__2, k__3, ... (linear time, however many repeats)."""
    d: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for k, v in pairs:
        key = k
        if key in d:
            i = seen.get(k, 1)
            while key in d:
                i += 1
                key = f"{k}__{i}"
            seen[k] = i
        d[key] = v
    return d


def _base_type(t) -> str:
    return t.split("<", 1)[0] if isinstance(t, str) else ""


def _node_id(n) -> str | None:
    v = n.get("id") if isinstance(n, dict) else None
    if isinstance(v, str) and v:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def _refs(n: dict) -> list[str]:
    """The nodes a node's ports refer to (every field that is a port: a dict with an "input")."""
    out = []
    for v in n.values():
        ref = v.get("input") if isinstance(v, dict) else None
        m = _PORT_NODE.match(ref) if isinstance(ref, str) else None
        if m:
            out.append(m.group(1))
    return out


def _check_nodes(name: str, raw_nodes) -> dict[str, dict]:
    """The file's nodes by id, after checking their JSON types."""
    if not isinstance(raw_nodes, list):
        raise ModelFormatError(f"{name}: not an ELL model (model.nodes is {type(raw_nodes).__name__}, not a list)")
    if len(raw_nodes) > MAX_NODES:
        raise ModelImportError(f"{name}: {len(raw_nodes)} nodes, more than the {MAX_NODES} allowed")
    out: dict[str, dict] = {}
    for k, n in enumerate(raw_nodes):
        if not isinstance(n, dict):
            raise ModelFormatError(f"{name}: model.nodes[{k}] is {type(n).__name__}, not a node object")
        nid = _node_id(n)
        if nid is None:
            raise ModelFormatError(f"{name}: model.nodes[{k}] has no valid 'id' (a string or integer)")
        if not isinstance(n.get("_type"), str):
            raise ModelFormatError(f"{name}: node {nid}: '_type' is missing or not a string")
        if nid in out:
            raise ModelFormatError(f"{name}: two nodes have the id {nid}")
        out[nid] = n
    return out


def _order(name: str, raw: dict[str, dict], output: str) -> list[str]:
    """The nodes the output depends on, each after its inputs (iterative depth-first walk)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    order: list[str] = []
    stack = [(output, iter(_refs(raw[output])))]
    state[output] = 1
    while stack:
        nid, deps = stack[-1]
        dep = next(deps, None)
        if dep is None:
            stack.pop()
            state[nid] = 2
            order.append(nid)
            continue
        if dep not in raw:
            raise ModelFormatError(f"{name}: node {nid}: a port refers to missing node {dep}")
        if state.get(dep) == 1:
            raise ModelImportError(
                f"{name}: node {nid}: its input comes from node {dep}, which depends on it (a cycle)"
            )
        if dep not in state:
            state[dep] = 1
            stack.append((dep, iter(_refs(raw[dep]))))
    return order


def _show(v) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, list, dict, type(None))) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


class _Builder:
    def __init__(self, name: str, raw: dict[str, dict]):
        self.name = name
        self.raw = raw
        self.alias: dict[str, str] = {}  # ELL node id -> our node id (identity-like nodes collapse)
        self.nodes: dict[str, Node] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.order: list[str] = []

    def fail(self, nid: str, msg: str):
        t = self.raw.get(nid, {}).get("_type", "?")
        raise ModelImportError(f"{self.name}: node {nid} ({t}): {msg}")

    def port(self, nid: str, port: str) -> str:
        n = self.raw[nid]
        ref = n[port].get("input") if isinstance(n.get(port), dict) else None
        if not isinstance(ref, str):
            self.fail(nid, f"has no input port {port!r}")
        m = _PORT.match(ref)
        if not m:
            self.fail(nid, f"port {port!r} uses an unsupported element range {ref!r}")
        src = m.group(1)
        if src not in self.alias:  # `_order` visits inputs first; this is only a safety net
            self.fail(nid, f"port {port!r} refers to node {src}, which is not translated before it")
        return self.alias[src]

    # -------------------------------------------------------------- typed fields
    def field(self, nid: str, d, path: str):
        """d[key] for the dotted `path` ("filters.numFilters"), or a ModelImportError naming it."""
        for key in path.split("."):
            if not isinstance(d, dict) or key not in d:
                self.fail(nid, f"field {path!r} is missing")
            d = d[key]
        return d

    def int_(self, nid: str, d, path: str, lo: int, hi: int, default: int | None = None) -> int:
        v = default if default is not None and not self._has(d, path) else self.field(nid, d, path)
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            self.fail(nid, f"field {path!r} must be an integer, is {_show(v)}")
        if not lo <= v <= hi:
            self.fail(nid, f"field {path!r} is {v}, outside {lo}..{hi}")
        return v

    def float_(self, nid: str, d, path: str, lo: float = -math.inf, hi: float = math.inf, default=None) -> float:
        v = default if default is not None and not self._has(d, path) else self.field(nid, d, path)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            self.fail(nid, f"field {path!r} must be a finite number, is {_show(v)}")
        if not lo <= v <= hi:
            self.fail(nid, f"field {path!r} is {v}, outside {lo}..{hi}")
        return float(v)

    def array(self, nid: str, d, path: str, max_size: int = MAX_PARAM, min_size: int = 0) -> np.ndarray:
        """A flat list of finite numbers as float32."""
        v = self.field(nid, d, path)
        if not isinstance(v, list):
            self.fail(nid, f"field {path!r} must be a list of numbers")
        if not min_size <= len(v) <= max_size:
            self.fail(nid, f"field {path!r} has {len(v)} values, outside {min_size}..{max_size}")
        try:  # numbers only (bools too: ConstantNode<bool>); strings, lists, null give another dtype
            arr = np.asarray(v)
        except (ValueError, OverflowError):  # ragged nesting; an integer too big for any dtype
            arr = np.asarray([], object)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf":
            self.fail(nid, f"field {path!r} must be a list of numbers")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > np.finfo(np.float32).max):
            self.fail(nid, f"field {path!r} holds NaN, infinite or out-of-range values")
        return arr.astype(np.float32)

    @staticmethod
    def _has(d, path: str) -> bool:
        for key in path.split("."):
            if not isinstance(d, dict) or key not in d:
                return False
            d = d[key]
        return True

    def constant(self, nid: str, port: str) -> np.ndarray:
        ref = self.port(nid, port)
        node = self.nodes[ref]
        if node.op != "constant":
            self.fail(nid, f"port {port!r} must come from a constant")
        return node.params["value"]

    def add(self, nid: str, op: str, inputs: list[str], attrs=None, params=None) -> str:
        arrays = {k: np.asarray(v, np.float32) for k, v in (params or {}).items()}
        for k, v in arrays.items():
            if not np.all(np.isfinite(v)):
                self.fail(nid, f"its {k} holds NaN or infinite values")
        node = Node(f"n{nid}", op, inputs, dict(attrs or {}), arrays)
        try:  # per-frame shapes as we go (one node at a time: linear in the node count)
            shape = tuple(int(d) for d in OPS[op].shape(node, [self.shapes[i] for i in inputs]))
        except (KwsError, KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            self.fail(nid, f"does not fit its inputs: {e}")
        if math.prod(shape) > MAX_FRAME or min(shape, default=1) < 1:
            self.fail(nid, f"makes frames of shape {shape} (at most {MAX_FRAME} values are allowed)")
        self.shapes[node.id] = shape
        self.nodes[node.id] = node
        self.order.append(node.id)
        self.alias[nid] = node.id
        return node.id

    def visit(self, nid: str) -> str:
        """Translate one node; `_order` has translated its inputs already."""
        if nid in self.alias:
            return self.alias[nid]
        n = self.raw[nid]
        t = _base_type(n.get("_type"))
        handler = getattr(self, "_" + t, None)
        if handler is None:
            self.fail(nid, f"unsupported ELL node type {t!r}")
        try:
            return handler(nid, n)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, ZeroDivisionError) as e:
            self.fail(nid, f"malformed node: {e!r}")

    # -------------------------------------------------------------- node handlers
    def _InputNode(self, nid, n):
        dims = self.field(nid, n, "layout.size")
        if not isinstance(dims, list) or not dims or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
            self.fail(nid, "field 'layout.size' must be a non-empty list of integers")
        if any(d < 1 for d in dims) or math.prod(dims) > MAX_FRAME:
            self.fail(nid, f"field 'layout.size' is {dims}: sizes must be at least 1, at most {MAX_FRAME} in all")
        return self.add(nid, "input", [], {"size": math.prod(dims)})

    def _OutputNode(self, nid, n):
        return self.add(nid, "output", [self.port(nid, "input")])

    def _ReinterpretLayoutNode(self, nid, n):
        src = self.port(nid, "input")
        self.alias[nid] = src
        return src

    def _ConstantNode(self, nid, n):
        return self.add(nid, "constant", [], {}, {"value": self.array(nid, n, "values")})

    def _BufferNode(self, nid, n):
        size = self.int_(nid, n, "windowSize", 1, MAX_FRAME)
        return self.add(nid, "frame_buffer", [self.port(nid, "input")], {"window_size": size})

    def _HammingWindowNode(self, nid, n):
        return self.add(nid, "window", [self.port(nid, "input")], {"kind": "hamming"})

    def _HannWindowNode(self, nid, n):
        return self.add(nid, "window", [self.port(nid, "input")], {"kind": "hann"})

    def _FFTNode(self, nid, n):
        src = self.port(nid, "input")
        size = self.int_(nid, n, "fftSize", 0, MAX_FFT, default=0) or dsp.next_pow2(self._size(src))
        if size > MAX_FFT:
            self.fail(nid, f"an FFT of {size} points (for {self._size(src)} inputs) is larger than allowed ({MAX_FFT})")
        return self.add(nid, "fft_mag", [src], {"n_fft": size, "power": False})

    def _filterbank(self, nid, n, kind):
        src = self.port(nid, "input")
        f = self.field(nid, n, "filters")
        window = self.int_(nid, n, "filters.windowSize", 1, MAX_FRAME)
        rate = self.float_(nid, n, "filters.rate", 1e-3, 1e9)
        count = self.int_(nid, n, "filters.numFilters", 1, MAX_FILTERS)
        begin = self.int_(nid, n, "filters.begin", 0, count, default=0)
        end = self.int_(nid, n, "filters.end", begin, count, default=count)
        new_style = self._has(f, "fftSize") or self._has(f, "offset")
        offset = self.float_(nid, n, "filters.offset", -1.0, 1.0, default=0.0) if new_style else 0.5
        span = self.int_(nid, n, "filters.fftSize", 1, MAX_FFT) if (kind == "mel" and "fftSize" in f) else window
        n_bins = self._size(src)
        if count * n_bins > MAX_PARAM:
            self.fail(nid, f"{count} filters over {n_bins} bins is a larger filter bank than allowed")
        if kind == "mel":
            hi = dsp.hz_to_mel(rate / 2)
            freqs = dsp.mel_to_hz(np.arange(count + 2) * hi / (count + 1))
        else:
            freqs = np.arange(count + 2) * (rate / 2) / (count + 1)
        bins = np.floor(freqs * (span + 1) / rate).astype(np.int64)
        w = dsp.triangle_bank(bins, n_bins, offset)[begin:end]
        return self.add(nid, "filterbank", [src], {"kind": kind}, {"weights": w})

    def _MelFilterBankNode(self, nid, n):
        return self._filterbank(nid, n, "mel")

    def _LinearFilterBankNode(self, nid, n):
        return self._filterbank(nid, n, "linear")

    def _IIRFilterNode(self, nid, n):
        b = [float(v) for v in self.array(nid, n, "filter.b", MAX_FILTERS, min_size=1)]
        a = [1.0] + [float(v) for v in self.array(nid, n, "filter.a", MAX_FILTERS)]
        return self.add(nid, "iir", [self.port(nid, "input")], {"b": b, "a": a})

    def _DCTNode(self, nid, n):
        n_out = self.int_(nid, n, "numFilters", 1, MAX_FILTERS)
        src = self.port(nid, "input")
        if n_out * self._size(src) > MAX_PARAM:
            self.fail(nid, f"a DCT of {self._size(src)} values to {n_out} is larger than allowed")
        return self.add(nid, "dct", [src], {"n_out": n_out})

    def _UnaryOperationNode(self, nid, n):
        op = self.field(nid, n, "operation")
        if not isinstance(op, str) or op not in _UNARY:
            self.fail(nid, f"unsupported unary operation {op!r}")
        return self.add(nid, "unary", [self.port(nid, "input")], {"fn": _UNARY[op]})

    def _BinaryOperationNode(self, nid, n):
        op = self.field(nid, n, "operation")
        if not isinstance(op, str) or op not in _BINARY:
            self.fail(nid, f"unsupported binary operation {op!r}")
        return self.add(nid, "binary", [self.port(nid, "input1"), self.port(nid, "input2")], {"fn": _BINARY[op]})

    def _vad(self, nid, n):
        keys = ("tauUp", "tauDown", "largeInput", "gainAtt", "thresholdUp", "thresholdDown", "levelThreshold")
        cfg = VadConfig(*(self.float_(nid, n, f"vad.{k}") for k in keys))
        attrs = cfg.to_dict() | {"frame_duration": self.float_(nid, n, "vad.frameDuration", 1e-6, 1e6),
                                 "sample_rate": self.float_(nid, n, "vad.sampleRate", 1e-3, 1e9)}
        return self.add(nid, "vad", [self.port(nid, "input")], attrs)

    _VoiceActivityDetectorNode = _vad
    _VoiceActivityDetectorCodeNode = _vad

    def _activation(self, nid, d) -> str:
        t = _base_type(d.get("_type")) if isinstance(d, dict) else ""
        if t not in _ACT:
            self.fail(nid, f"unsupported activation {t!r}")
        return _ACT[t]

    def _recurrent(self, nid, n, op, gates):
        x = self.port(nid, "input")
        inputs = [x]
        trig_ref = self.port(nid, "resetTrigger") if "resetTrigger" in n else None
        if trig_ref is not None and self.nodes[trig_ref].op != "constant":
            inputs.append(trig_ref)
        hid = self.int_(nid, n, "hiddenUnits", 1, MAX_FRAME)
        w_ih, w_hh = self.constant(nid, "inputWeights"), self.constant(nid, "hiddenWeights")
        b_ih, b_hh = self.constant(nid, "inputBias"), self.constant(nid, "hiddenBias")
        n_in = self._size(x)
        for what, arr, want in (("inputWeights", w_ih, gates * hid * n_in), ("hiddenWeights", w_hh, gates * hid * hid),
                                ("inputBias", b_ih, gates * hid), ("hiddenBias", b_hh, gates * hid)):
            if arr.size != want:
                self.fail(nid, f"{what} has {arr.size} values; {gates} gates of {hid} units over {n_in} inputs "
                               f"need {want}")
        w_ih, w_hh = w_ih.reshape(gates * hid, n_in), w_hh.reshape(gates * hid, hid)
        if op == "gru":  # ELL stacks (z, r, n); ours is PyTorch's (r, z, n)
            perm = np.concatenate([np.arange(hid, 2 * hid), np.arange(hid), np.arange(2 * hid, 3 * hid)])
            w_ih, w_hh, b_ih, b_hh = w_ih[perm], w_hh[perm], b_ih[perm], b_hh[perm]
        attrs = {"hidden_size": hid, "activation": self._activation(nid, self.field(nid, n, "activation")),
                 "gate_activation": self._activation(nid, n.get("activation__2", {"_type": "SigmoidActivation"}))}
        return self.add(nid, op, inputs, attrs, {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh})

    def _GRUNode(self, nid, n):
        return self._recurrent(nid, n, "gru", 3)

    def _LSTMNode(self, nid, n):
        return self._recurrent(nid, n, "lstm", 4)

    def _FullyConnectedLayerNode(self, nid, n):
        rows = self.int_(nid, n, "layer.weights_rows", 1, MAX_FRAME)
        cols = self.int_(nid, n, "layer.weights_columns", 1, MAX_FRAME)
        w = self.array(nid, n, "layer.weights_values")
        if w.size != rows * cols:
            self.fail(nid, f"field 'layer.weights_values' has {w.size} values, {rows} x {cols} need {rows * cols}")
        w = w.reshape(rows, cols)
        return self.add(nid, "dense", [self.port(nid, "input")], {}, {"weight": w})

    def _BiasLayerNode(self, nid, n):
        b = self.array(nid, n, "layer.bias_values")
        src = self.port(nid, "input")
        c = self.add(nid + "_bias", "constant", [], {}, {"value": b})
        return self.add(nid, "binary", [src, c], {"fn": "add"})

    def _SoftmaxLayerNode(self, nid, n):
        return self.add(nid, "softmax", [self.port(nid, "input")])

    def _ActivationLayerNode(self, nid, n):
        fn = self._activation(nid, self.field(nid, n, "layer.activation"))
        return self.add(nid, "unary", [self.port(nid, "input")], {"fn": fn})

    def _size(self, our_id: str) -> int:
        return math.prod(self.shapes[our_id])


def _metadata(graph: Graph, path: Path) -> dict:
    meta: dict[str, Any] = {"source": {"format": "ell", "file": path.name}}
    fb = graph.by_op("frame_buffer")
    mel = [n for n in graph.by_op("filterbank")]
    if fb:
        meta["kind"] = "featurizer"
        meta["hop_length"] = graph.input_size
        meta["window_size"] = int(fb[0].attrs["window_size"])
        ffts = graph.by_op("fft_mag")
        if ffts:
            meta["n_fft"] = int(ffts[0].attrs["n_fft"])
    else:
        meta["kind"] = "classifier"
    return meta | ({"n_filters": int(mel[0].params["weights"].shape[0])} if mel else {})


def load_ell(path: str | os.PathLike) -> Graph:
    p = Path(path)
    text = read_text_bounded(p, "ELL model", error=ModelFormatError, max_bytes=MAX_ELL_BYTES)
    try:
        doc = json.loads(text, object_pairs_hook=_keep_duplicates)
    except RecursionError:
        raise ModelFormatError(f"{p}: not an ELL model (JSON nested too deeply)") from None
    except ValueError as e:
        raise ModelFormatError(f"{p}: not an ELL model (invalid JSON: {e})") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict) or "nodes" not in model:
        raise ModelFormatError(f"{p}: not an ELL model (no model.nodes)")
    raw = _check_nodes(str(p), model["nodes"])
    b = _Builder(str(p), raw)
    outputs = [nid for nid, n in raw.items() if _base_type(n["_type"]) == "OutputNode"]
    if len(outputs) != 1:
        raise ModelImportError(f"{p}: expected one OutputNode, found {len(outputs)}")
    # unknown types anywhere in the file are reported, even off the output path
    for nid, n in raw.items():
        t = _base_type(n["_type"])
        if not hasattr(b, "_" + t) and t not in _IGNORED:
            raise ModelImportError(f"{p}: node {nid}: unsupported ELL node type {t!r}")
    for nid in _order(str(p), raw, outputs[0]):
        b.visit(nid)
    graph = Graph([b.nodes[i] for i in b.order], {})
    if not graph.by_op("input"):
        raise ModelImportError(f"{p}: the output does not depend on an InputNode")
    try:
        graph.prune()
        graph.metadata = _metadata(graph, p)
        graph.validate()
    except ModelFormatError as e:
        raise ModelImportError(f"{p}: the model's nodes do not fit together: {e}") from None
    return graph
