"""ELL model files (.ell: JSON whose GRU/LSTM nodes repeat the key "activation").

Seeds: a small featurizer and a small GRU classifier built here (so the format is fuzzed even where
../shared/data is absent), plus the real DevKit featurizer.ell and classifier.ell read from
../shared/data at run time when it is there (never copied into the repo). Mutations: mostly ELL-aware
edits of the node list (a field of another type or an absurd size, a key or node removed, a port
pointed at another node or at itself, a node duplicated or replaced by a string/null, a 5000-deep
nesting), else the generic JSON-tree and byte mutators. The loader imports and then runs the graph
for a few frames: an absurd model must be refused at import, so one that imports and fails to run
is a failure too.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from pathlib import Path

import numpy as np

from core.graph.interpreter import Interpreter
from core.importers.ell import _keep_duplicates, load_ell

from .formats import Format, register
from .mutate import DEEP, mutate_bytes, mutate_json

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ell_devkit_model"

# values a field may be replaced with: other JSON types, zero/negative/huge sizes, non-finite numbers
_ODD = [None, True, False, 0, -1, 1, 3, 2**31, 2**36, 10**7, 10**12, 10**400, 1e300, -1e300, 0.5, -0.0,
        float("nan"), float("inf"), float("-inf"), "", "abc", "512", "1.output", [], [1, 2], [[1]], {}, {"_type": 1}]
_ELL_TYPES = ["InputNode<float>", "OutputNode<float>", "BufferNode<float>", "FFTNode<float>", "DCTNode<float>",
              "HammingWindowNode<float>", "MelFilterBankNode<float>", "LinearFilterBankNode<float>",
              "ConstantNode<float>", "UnaryOperationNode<float>", "BinaryOperationNode<float>", "GRUNode<float>",
              "LSTMNode<float>", "FullyConnectedLayerNode<float>", "BiasLayerNode<float>", "SoftmaxLayerNode<float>",
              "ActivationLayerNode<float>", "IIRFilterNode<float>", "ReinterpretLayoutNode<float>",
              "VoiceActivityDetectorNode<float>", "SinkNode<int>", "NoSuchNode<float>"]
_DUP = re.compile(r"__\d+$")


def _dumps(v) -> str:
    """JSON text in which keys k__2, k__3 (the importer's names for repeated keys) repeat k again."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(_DUP.sub('', str(k)))}: {_dumps(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        if not any(isinstance(x, (dict, list)) for x in v):
            return json.dumps(v)  # weights: the fast path (NaN and infinities come out as JSON5-style literals)
        return "[" + ", ".join(_dumps(x) for x in v) + "]"
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return json.dumps(v)


def _containers(v):
    """Every (container, key) pair below v, lists and dicts, iteratively; long lists are sampled."""
    out, stack = [], [v]
    while stack:
        c = stack.pop()
        keys = list(c.keys()) if isinstance(c, dict) else list(range(len(c)))
        if len(keys) > 8 and isinstance(c, list):
            keys = keys[:4] + keys[-2:]
        for k in keys:
            out.append((c, k))
            if isinstance(c[k], (dict, list)):
                stack.append(c[k])
    return out


@functools.lru_cache(maxsize=8)
def _parsed(seed: bytes) -> dict:
    return json.loads(seed, object_pairs_hook=_keep_duplicates)


def mutate_ell_tree(rng: random.Random, seed: bytes) -> bytes:
    """One to three ELL-aware edits of the node list (the nodes edited are copies; the parse is cached)."""
    doc = dict(_parsed(seed))
    doc["model"] = dict(doc["model"])
    nodes = doc["model"]["nodes"] = list(doc["model"]["nodes"])
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(len(nodes))
        node = nodes[k] = copy.deepcopy(nodes[k])
        r = rng.random()
        slots = _containers(node) if isinstance(node, (dict, list)) else []
        if r < 0.45 and slots:  # a field somewhere in the node gets an odd value
            c, key = rng.choice(slots)
            c[key] = rng.choice(_ODD)
        elif r < 0.55 and slots:  # a key disappears
            c, key = rng.choice(slots)
            if isinstance(c, dict):
                del c[key]
            else:
                del c[key:]
        elif r < 0.7 and isinstance(node, dict):  # a port points at another node (or itself: cycles)
            ports = [v for v in node.values() if isinstance(v, dict) and "input" in v]
            if ports:
                other = rng.choice(nodes)
                oid = other.get("id", "x") if isinstance(other, dict) else "x"
                rng.choice(ports)["input"] = f"{oid}.output"
        elif r < 0.78 and isinstance(node, dict):
            node["_type"] = rng.choice(_ELL_TYPES + [5, None, ["InputNode"]])
        elif r < 0.84:
            nodes[k] = rng.choice(["node", None, 7, [], {}])
        elif r < 0.9:
            nodes.insert(rng.randrange(len(nodes) + 1), json.loads(json.dumps(node)))  # duplicate id
        elif r < 0.95:
            del nodes[k]
            if not nodes:
                nodes.append({})
        elif isinstance(node, dict):  # deep nesting in a field
            node[rng.choice(["deep", "layout", "values", "input"])] = DEEP
    return _dumps(doc).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000).encode()


def _layout(size: list[int]) -> dict:
    return {"_type": "MemoryLayout", "size": size}


def _port(src: str, name: str = "input") -> dict:
    return {"_type": "InputPort<float>", "name": name, "input": f"{src}.output"}


def _const(nid: str, values) -> dict:
    values = [round(float(v), 6) for v in np.asarray(values).reshape(-1)]
    return {"_type": "ConstantNode<float>", "id": nid, "values": values, "layout": _layout([len(values)])}


def small_featurizer() -> dict:
    """16-sample hops, 32-sample Hann window, 32-point FFT, 8 mel filters, log(x + 1), 6 DCT outputs."""
    return {"_type": "Map", "model": {"nodes": [
        {"_type": "InputNode<float>", "id": "1", "layout": _layout([16])},
        {"_type": "BufferNode<float>", "id": "2", "input": _port("1"), "windowSize": 32},
        {"_type": "HannWindowNode<float>", "id": "3", "input": _port("2")},
        {"_type": "FFTNode<float>", "id": "4", "input": _port("3"), "fftSize": 32},
        {"_type": "MelFilterBankNode<float>", "id": "5", "input": _port("4"),
         "filters": {"windowSize": 16, "rate": 8000, "numFilters": 8, "begin": 0, "end": 8, "offset": 0,
                     "fftSize": 32}},
        _const("6", np.ones(8)),
        {"_type": "BinaryOperationNode<float>", "id": "7", "input1": _port("5", "input1"),
         "input2": _port("6", "input2"), "operation": "add"},
        {"_type": "UnaryOperationNode<float>", "id": "8", "input": _port("7"), "operation": "log"},
        {"_type": "DCTNode<float>", "id": "9", "input": _port("8"), "numFilters": 6},
        {"_type": "IIRFilterNode<float>", "id": "10", "input": _port("9"), "filter": {"b": [0.5, 0.5], "a": [-0.1]}},
        {"_type": "OutputNode<float>", "id": "11", "input": _port("10"), "layout": _layout([6])},
    ]}}


def small_classifier() -> dict:
    """6 features -> VAD-reset GRU (4 units, both activation keys) -> dense -> bias -> softmax (5 classes)."""
    r = np.random.default_rng(0)
    vad = {"_type": "VoiceActivityDetector", "windowSize": 6, "sampleRate": 16000, "frameDuration": 0.032,
           "tauUp": 1, "tauDown": 0.1, "largeInput": 4, "gainAtt": 0.1, "thresholdUp": 1, "thresholdDown": 1,
           "levelThreshold": 0.1}
    gru = {"_type": "GRUNode<float>", "id": "8", "input": _port("1"), "resetTrigger": _port("2", "resetTrigger"),
           "hiddenUnits": 4, "inputWeights": _port("3", "inputWeights"), "hiddenWeights": _port("4", "hiddenWeights"),
           "inputBias": _port("5", "inputBias"), "hiddenBias": _port("6", "hiddenBias"),
           "activation": {"_type": "TanhActivation<float>"}, "activation__2": {"_type": "SigmoidActivation<float>"}}
    return {"_type": "Map", "model": {"nodes": [
        {"_type": "InputNode<float>", "id": "1", "layout": _layout([1, 6, 1])},
        {"_type": "VoiceActivityDetectorCodeNode", "id": "2", "input": _port("1"), "vad": vad},
        _const("3", r.normal(0, 0.3, 72)), _const("4", r.normal(0, 0.3, 48)),
        _const("5", r.normal(0, 0.3, 12)), _const("6", r.normal(0, 0.3, 12)),
        gru,
        {"_type": "FullyConnectedLayerNode<float>", "id": "9", "input": _port("8"),
         "layer": {"weights_rows": 5, "weights_columns": 4,
                   "weights_values": [round(float(v), 6) for v in r.normal(0, 0.3, 20)]}},
        {"_type": "BiasLayerNode<float>", "id": "10", "input": _port("9"),
         "layer": {"bias_values": [0.1, -0.1, 0.2, 0.0, 0.3]}},
        {"_type": "ActivationLayerNode<float>", "id": "11", "input": _port("10"),
         "layer": {"activation": {"_type": "ReLUActivation<float>"}}},
        {"_type": "ReinterpretLayoutNode<float>", "id": "12", "input": _port("11")},
        {"_type": "SoftmaxLayerNode<float>", "id": "13", "input": _port("12")},
        {"_type": "OutputNode<float>", "id": "14", "input": _port("13")},
    ]}}


def ell_seeds() -> list[bytes]:
    seeds = [_dumps(small_featurizer()).encode(), _dumps(small_classifier()).encode()]
    for name in ("featurizer.ell", "classifier.ell"):
        if (SHARED / name).is_file():
            seeds.append((SHARED / name).read_bytes())
    return seeds


def mutate_ell(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    r = rng.random()
    if r < 0.7 or (r < 0.9 and len(data) > 100_000):  # the generic JSON mutator copies the whole tree: slow
        return mutate_ell_tree(rng, data)
    if r < 0.9:
        return mutate_json(rng, data, seeds)
    return mutate_bytes(rng, data, seeds)


def load_and_run(path: str) -> None:
    graph = load_ell(path)
    rt = Interpreter(graph)
    with np.errstate(all="ignore"):  # overflow in a model's arithmetic is its business, not an error
        rt.run(np.random.default_rng(0).normal(0, 0.1, (3, rt.input_size)).astype(np.float32))


register(Format("ell", ".ell", ell_seeds, load_and_run, mutate_ell))
