"""ONNX model files (.onnx), through core.importers.onnx.load_onnx.

Seeds: small keyword-spotter models of every architecture tests/core/onnx_models.py builds (GRU,
LSTM with batch norm, TCN, CRNN, MLP, the layout-op zoo, per-frame math), exported by PyTorch at
run time, plus the real DevKit GRU100KeywordSpotter.onnx read from ../shared/data when it is there
(never copied into the repo). Mutations: mostly edits of the protobuf (attributes of another type
or an absurd value, inputs rewired, dropped or pointed at a node's own output, making cycles, op
types swapped, nodes removed, duplicated or shuffled, tensor dims, data types and contents changed,
external-data entries garbled, input dims made absurd, the opset changed), else byte damage. The
loader imports and then runs the graph for a few frames: an absurd model must be refused at import.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper

from core.graph.interpreter import Interpreter
from core.importers.onnx import load_onnx

from .formats import Format, register
from .mutate import mutate_bytes

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ell_devkit_model"

_ONNX_OPS = ["Identity", "Relu", "Add", "MatMul", "Gemm", "GRU", "LSTM", "Conv", "Reshape", "Transpose", "Squeeze",
             "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Pad", "Softmax", "LogSoftmax", "ReduceMean",
             "Expand", "ConstantOfShape", "Range", "Tile", "Shape", "Cast", "Flatten", "BatchNormalization",
             "LayerNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Clip", "Pow", "Loop", "If",
             "NoSuchOp"]
_INTS = [0, 1, -1, 2, 3, -5, 7, 2**20, 2**31 - 1, 2**40, -(2**40), 2**62]


def _mutate_attribute(a, rng: random.Random) -> None:
    r = rng.random()
    if r < 0.3 and a.ints:
        a.ints[rng.randrange(len(a.ints))] = rng.choice(_INTS)
    elif r < 0.45 and a.ints:
        del a.ints[rng.randrange(len(a.ints)):]
    elif r < 0.6 and a.type == AttributeProto.INT:
        a.i = rng.choice(_INTS)
    elif r < 0.7 and a.type == AttributeProto.FLOAT:
        a.f = rng.choice([float("nan"), float("inf"), -1.0, 0.0, 1e30])
    elif r < 0.85:  # the same name, another type
        new = helper.make_attribute(a.name, rng.choice([b"abc", 2.5, [1, 2, 3], -1, [0.5], 2**40]))
        a.CopyFrom(new)
    else:
        a.type = AttributeProto.UNDEFINED


def _mutate_tensor(t, rng: random.Random) -> None:
    r = rng.random()
    if r < 0.3 and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice(_INTS)
    elif r < 0.4:
        t.dims.append(rng.choice([1, 2, 2**30]))
    elif r < 0.5:
        del t.dims[:]
    elif r < 0.6:
        t.data_type = rng.choice([0, 2, 7, 8, 9, 10, 11, 14, 16, 999])
    elif r < 0.7 and t.raw_data:
        t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
    elif r < 0.8 and t.raw_data and t.data_type == TensorProto.FLOAT:
        arr = np.frombuffer(t.raw_data, np.float32).copy()
        arr[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e38])
        t.raw_data = arr.tobytes()
    else:  # external data that is not there, or entries that make no sense
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", rng.choice(["w.bin", "../w.bin", "/dev/zero", "", "a/../../b"])),
                           ("offset", rng.choice(["0", "-100", "abc", "99999999999999999999", "12"])),
                           ("length", rng.choice(["4", "-1", "x", "1e9", str(2**62)]))):
            if rng.random() < 0.8:
                e = t.external_data.add()
                e.key, e.value = key, value


def mutate_onnx_proto(rng: random.Random, seed: bytes) -> bytes:
    """One to three edits of the model's protobuf."""
    m = onnx.ModelProto()
    m.ParseFromString(seed)
    g = m.graph
    names = [i.name for i in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        node = g.node[rng.randrange(len(g.node))] if g.node else None
        if node is None:
            break
        if r < 0.25 and node.attribute:
            _mutate_attribute(node.attribute[rng.randrange(len(node.attribute))], rng)
        elif r < 0.35:  # an input rewired (to any tensor: later ones make cycles) or dropped
            if node.input and rng.random() < 0.5:
                del node.input[rng.randrange(len(node.input)):]
            elif node.input:
                node.input[rng.randrange(len(node.input))] = rng.choice(names + ["", "nowhere"])
        elif r < 0.42:
            node.op_type = rng.choice(_ONNX_OPS)
        elif r < 0.48:
            node.input.append(rng.choice(names + [node.output[0] if node.output else "y"]))
        elif r < 0.53:
            g.node.remove(node)
        elif r < 0.58:
            g.node.add().CopyFrom(node)  # the same outputs twice
        elif r < 0.63:
            a = node.attribute.add()
            a.CopyFrom(helper.make_attribute(rng.choice(["axis", "perm", "axes", "split", "pads", "shape"]),
                                                  rng.choice([2**40, -9, [0, 7, 1], [2**40, 1], 3])))
        elif r < 0.8:
            tensors = list(g.initializer) + [a.t for n in g.node for a in n.attribute if a.HasField("t")]
            if tensors:
                _mutate_tensor(rng.choice(tensors), rng)
        elif r < 0.9 and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if dims:
                d = dims[rng.randrange(len(dims))]
                if rng.random() < 0.7:
                    d.dim_value = rng.choice([0, 1, 2**20, 2**40, 1_000_003])
                else:
                    d.dim_param = "time"
            else:
                g.input[0].type.tensor_type.elem_type = rng.choice([0, 7, 8])
        elif r < 0.95:
            m.opset_import[0].version = rng.choice([1, 5, 6, 7, 13, 99])
        else:
            order = list(g.node)
            rng.shuffle(order)
            del g.node[:]
            g.node.extend(order)
    return m.SerializeToString()


def mutate_onnx(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    if rng.random() < 0.85:
        try:
            return mutate_onnx_proto(rng, data)
        except Exception:  # noqa: BLE001 - protobuf refusing an edit (e.g. a value out of its type's range)
            pass
    return mutate_bytes(rng, data, seeds)


@functools.cache
def onnx_seeds_cached() -> tuple[bytes, ...]:
    spec = importlib.util.spec_from_file_location("onnx_models", Path(__file__).parents[1] / "core" / "onnx_models.py")
    om = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(om)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (arch, kw) in enumerate([("rnn", {"kind": "gru"}), ("rnn", {"kind": "lstm", "norm": "batch"}),
                                        ("tcn", {}), ("crnn", {}), ("mlp", {}), ("zoo", {}), ("math", {})]):
            out.append(om.export(om.build(arch, **kw), Path(tmp) / f"{k}.onnx", opset=13).read_bytes())
    if (SHARED / "GRU100KeywordSpotter.onnx").is_file():
        out.append((SHARED / "GRU100KeywordSpotter.onnx").read_bytes())
    return tuple(out)


def onnx_seeds() -> list[bytes]:
    return list(onnx_seeds_cached())


def load_and_run(path: str) -> None:
    graph = load_onnx(path)
    rt = Interpreter(graph)
    with np.errstate(all="ignore"):  # overflow in a model's arithmetic is its business, not an error
        rt.run(np.random.default_rng(0).normal(0, 0.1, (3, rt.input_size)).astype(np.float32))


register(Format("onnx", ".onnx", onnx_seeds, load_and_run, mutate_onnx))
