"""Import ELL model files (.ell, JSON) into our graph.

Covers the node types of ELL's audio tutorials: input/output, buffer, Hamming/Hann window,
FFT, mel and linear filter banks, IIR filter, DCT, constants, unary and binary operations,
VAD, GRU/LSTM with reset trigger, fully connected / bias / softmax / activation layers and
layout reinterpretation. GRU/LSTM nodes carry the key "activation" twice (activation, then
gate activation): the parser keeps both.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelFormatError, ModelImportError
from core.features import dsp
from core.features.vad import VadConfig
from core.graph.ir import Graph, Node

_PORT = re.compile(r"^\s*(\w+)\.(\w+)\s*$")
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
    d: dict[str, Any] = {}
    for k, v in pairs:
        key, i = k, 2
        while key in d:
            key, i = f"{k}__{i}", i + 1
        d[key] = v
    return d


def _base_type(t: str) -> str:
    return t.split("<", 1)[0]


class _Builder:
    def __init__(self, name: str, raw_nodes: list[dict]):
        self.name = name
        self.raw = {str(n["id"]): n for n in raw_nodes}
        self.alias: dict[str, str] = {}  # ELL node id -> our node id (identity-like nodes collapse)
        self.nodes: dict[str, Node] = {}
        self.order: list[str] = []

    def fail(self, nid: str, msg: str):
        t = self.raw.get(nid, {}).get("_type", "?")
        raise ModelImportError(f"{self.name}: node {nid} ({t}): {msg}")

    def port(self, nid: str, port: str) -> str:
        n = self.raw[nid]
        ref = n.get(port, {}).get("input") if isinstance(n.get(port), dict) else None
        if not isinstance(ref, str):
            self.fail(nid, f"has no input port {port!r}")
        m = _PORT.match(ref)
        if not m:
            self.fail(nid, f"port {port!r} uses an unsupported element range {ref!r}")
        return self.visit(m.group(1))

    def constant(self, nid: str, port: str) -> np.ndarray:
        ref = self.port(nid, port)
        node = self.nodes[ref]
        if node.op != "constant":
            self.fail(nid, f"port {port!r} must come from a constant")
        return node.params["value"]

    def add(self, nid: str, op: str, inputs: list[str], attrs=None, params=None) -> str:
        arrays = {k: np.asarray(v, np.float32) for k, v in (params or {}).items()}
        node = Node(f"n{nid}", op, inputs, dict(attrs or {}), arrays)
        self.nodes[node.id] = node
        self.order.append(node.id)
        self.alias[nid] = node.id
        return node.id

    def visit(self, nid: str) -> str:
        if nid in self.alias:
            return self.alias[nid]
        if nid not in self.raw:
            raise ModelFormatError(f"{self.name}: a port refers to missing node {nid}")
        n = self.raw[nid]
        t = _base_type(n.get("_type", ""))
        handler = getattr(self, "_" + t, None)
        if handler is None:
            self.fail(nid, f"unsupported ELL node type {t!r}")
        try:
            return handler(nid, n)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            self.fail(nid, f"malformed node: {e!r}")

    # -------------------------------------------------------------- node handlers
    def _InputNode(self, nid, n):
        return self.add(nid, "input", [], {"size": int(np.prod(n["layout"]["size"]))})

    def _OutputNode(self, nid, n):
        return self.add(nid, "output", [self.port(nid, "input")])

    def _ReinterpretLayoutNode(self, nid, n):
        src = self.port(nid, "input")
        self.alias[nid] = src
        return src

    def _ConstantNode(self, nid, n):
        vals = np.asarray(n["values"], dtype=np.float64).astype(np.float32)
        return self.add(nid, "constant", [], {}, {"value": vals.reshape(-1)})

    def _BufferNode(self, nid, n):
        return self.add(nid, "frame_buffer", [self.port(nid, "input")], {"window_size": int(n["windowSize"])})

    def _HammingWindowNode(self, nid, n):
        return self.add(nid, "window", [self.port(nid, "input")], {"kind": "hamming"})

    def _HannWindowNode(self, nid, n):
        return self.add(nid, "window", [self.port(nid, "input")], {"kind": "hann"})

    def _FFTNode(self, nid, n):
        src = self.port(nid, "input")
        size = int(n.get("fftSize") or dsp.next_pow2(self._size(src)))
        return self.add(nid, "fft_mag", [src], {"n_fft": size, "power": False})

    def _filterbank(self, nid, n, kind):
        src = self.port(nid, "input")
        f = n["filters"]
        window, rate, count = int(f["windowSize"]), float(f["rate"]), int(f["numFilters"])
        begin, end = int(f.get("begin", 0)), int(f.get("end", count))
        new_style = "fftSize" in f or "offset" in f
        offset = float(f.get("offset", 0.0)) if new_style else 0.5
        span = int(f["fftSize"]) if (kind == "mel" and "fftSize" in f) else window
        if kind == "mel":
            hi = dsp.hz_to_mel(rate / 2)
            freqs = dsp.mel_to_hz(np.arange(count + 2) * hi / (count + 1))
        else:
            freqs = np.arange(count + 2) * (rate / 2) / (count + 1)
        bins = np.floor(freqs * (span + 1) / rate).astype(np.int64)
        w = dsp.triangle_bank(bins, self._size(src), offset)[begin:end]
        return self.add(nid, "filterbank", [src], {"kind": kind}, {"weights": w})

    def _MelFilterBankNode(self, nid, n):
        return self._filterbank(nid, n, "mel")

    def _LinearFilterBankNode(self, nid, n):
        return self._filterbank(nid, n, "linear")

    def _IIRFilterNode(self, nid, n):
        f = n["filter"]
        b = [float(v) for v in f["b"]]
        a = [1.0] + [float(v) for v in f["a"]]
        return self.add(nid, "iir", [self.port(nid, "input")], {"b": b, "a": a})

    def _DCTNode(self, nid, n):
        return self.add(nid, "dct", [self.port(nid, "input")], {"n_out": int(n["numFilters"])})

    def _UnaryOperationNode(self, nid, n):
        op = n["operation"]
        if op not in _UNARY:
            self.fail(nid, f"unsupported unary operation {op!r}")
        return self.add(nid, "unary", [self.port(nid, "input")], {"fn": _UNARY[op]})

    def _BinaryOperationNode(self, nid, n):
        op = n["operation"]
        if op not in _BINARY:
            self.fail(nid, f"unsupported binary operation {op!r}")
        return self.add(nid, "binary", [self.port(nid, "input1"), self.port(nid, "input2")], {"fn": _BINARY[op]})

    def _vad(self, nid, n):
        v = n["vad"]
        cfg = VadConfig(v["tauUp"], v["tauDown"], v["largeInput"], v["gainAtt"], v["thresholdUp"],
                        v["thresholdDown"], v["levelThreshold"])
        attrs = cfg.to_dict() | {"frame_duration": float(v["frameDuration"]), "sample_rate": float(v["sampleRate"])}
        return self.add(nid, "vad", [self.port(nid, "input")], attrs)

    _VoiceActivityDetectorNode = _vad
    _VoiceActivityDetectorCodeNode = _vad

    def _activation(self, nid, d: dict) -> str:
        t = _base_type(d.get("_type", ""))
        if t not in _ACT:
            self.fail(nid, f"unsupported activation {t!r}")
        return _ACT[t]

    def _recurrent(self, nid, n, op, gates):
        x = self.port(nid, "input")
        inputs = [x]
        trig_ref = self.port(nid, "resetTrigger") if "resetTrigger" in n else None
        if trig_ref is not None and self.nodes[trig_ref].op != "constant":
            inputs.append(trig_ref)
        hid = int(n["hiddenUnits"])
        w_ih, w_hh = self.constant(nid, "inputWeights"), self.constant(nid, "hiddenWeights")
        b_ih, b_hh = self.constant(nid, "inputBias"), self.constant(nid, "hiddenBias")
        w_ih, w_hh = w_ih.reshape(gates * hid, -1), w_hh.reshape(gates * hid, hid)
        if op == "gru":  # ELL stacks (z, r, n); ours is PyTorch's (r, z, n)
            perm = np.concatenate([np.arange(hid, 2 * hid), np.arange(hid), np.arange(2 * hid, 3 * hid)])
            w_ih, w_hh, b_ih, b_hh = w_ih[perm], w_hh[perm], b_ih[perm], b_hh[perm]
        attrs = {"hidden_size": hid, "activation": self._activation(nid, n["activation"]),
                 "gate_activation": self._activation(nid, n.get("activation__2", {"_type": "SigmoidActivation"}))}
        return self.add(nid, op, inputs, attrs, {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh})

    def _GRUNode(self, nid, n):
        return self._recurrent(nid, n, "gru", 3)

    def _LSTMNode(self, nid, n):
        return self._recurrent(nid, n, "lstm", 4)

    def _FullyConnectedLayerNode(self, nid, n):
        layer = n["layer"]
        rows, cols = int(layer["weights_rows"]), int(layer["weights_columns"])
        w = np.asarray(layer["weights_values"], np.float32).reshape(rows, cols)
        return self.add(nid, "dense", [self.port(nid, "input")], {}, {"weight": w})

    def _BiasLayerNode(self, nid, n):
        b = np.asarray(n["layer"]["bias_values"], np.float32)
        src = self.port(nid, "input")
        c = self.add(nid + "_bias", "constant", [], {}, {"value": b})
        return self.add(nid, "binary", [src, c], {"fn": "add"})

    def _SoftmaxLayerNode(self, nid, n):
        return self.add(nid, "softmax", [self.port(nid, "input")])

    def _ActivationLayerNode(self, nid, n):
        fn = self._activation(nid, n["layer"]["activation"])
        return self.add(nid, "unary", [self.port(nid, "input")], {"fn": fn})

    def _size(self, our_id: str) -> int:
        from core.graph.shapes import infer_shapes

        sub = Graph([self.nodes[i] for i in self.order], {})
        return int(np.prod(infer_shapes(sub)[our_id]))


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
    try:
        doc = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=_keep_duplicates)
    except OSError as e:
        raise ModelFormatError(f"{p}: cannot read: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{p}: not an ELL model (invalid JSON: {e})") from None
    try:
        raw_nodes = doc["model"]["nodes"]
    except (KeyError, TypeError):
        raise ModelFormatError(f"{p}: not an ELL model (no model.nodes)") from None
    b = _Builder(str(p), raw_nodes)
    outputs = [nid for nid, n in b.raw.items() if _base_type(n.get("_type", "")) == "OutputNode"]
    if len(outputs) != 1:
        raise ModelImportError(f"{p}: expected one OutputNode, found {len(outputs)}")
    # unknown types anywhere in the file are reported, even off the output path
    for nid, n in b.raw.items():
        t = _base_type(n.get("_type", ""))
        if not hasattr(b, "_" + t) and t not in _IGNORED:
            raise ModelImportError(f"{p}: node {nid}: unsupported ELL node type {t!r}")
    b.visit(outputs[0])
    graph = Graph([b.nodes[i] for i in b.order], {})
    if not graph.by_op("input"):
        raise ModelImportError(f"{p}: the output does not depend on an InputNode")
    graph.prune()
    if False:
        raise ModelImportError(f"{p}: the output does not depend on an InputNode")
    graph.metadata = _metadata(graph, p)
    graph.validate()
    return graph
